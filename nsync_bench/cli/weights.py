"""``nsync-bench weights``: list and fetch the official metric weights (checksum-verified)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nsync_bench.cli.app import console, weights_app

# ruff: noqa: UP045 - typer needs Optional


WeightsDirOption = Annotated[
    Optional[Path], typer.Option(help="Weights folder (default: $NSYNC_BENCH_WEIGHTS_DIR or the user cache).")
]

Sha256Option = Annotated[Optional[str], typer.Option(help="Expected sha256 (pins a file with no registered hash).")]


@weights_app.command("list")
def list_weights(weights_dir: WeightsDirOption = None) -> None:
    """Each weight file: where it must be, whether it is there, its source and checksum status."""
    from rich.table import Table

    from nsync_bench.metrics.weights import REGISTRY, weight_path

    table = Table("name", "present", "path", "checksum", "source", title="metric weights")
    for column in table.columns:
        column.overflow = "fold"
    for name, entry in REGISTRY.items():
        path = weight_path(name, weights_dir)
        present = path.exists()
        checksum = "sha256" if entry.sha256 else ("prefix " + entry.sha256_prefix if entry.sha256_prefix else "none")
        table.add_row(name, "[green]yes[/]" if present else "[red]no[/]", str(path), checksum,
                      entry.repo_id or entry.url)
    console.print(table)


@weights_app.command("fetch")
def fetch_weights(
    names: Annotated[Optional[list[str]], typer.Argument(help="Entries to fetch (default: all).")] = None,
    weights_dir: WeightsDirOption = None,
    url: Annotated[Optional[str], typer.Option(help="Download from this mirror instead (one NAME only).")] = None,
    sha256: Sha256Option = None,
    force: Annotated[bool, typer.Option(help="Download again even if present.")] = False,
) -> None:
    """Download official metric weights into the weights folder, verifying checksums."""
    from nsync_bench.cli.progress import RichProgress
    from nsync_bench.errors import ConfigError
    from nsync_bench.metrics.weights import REGISTRY, fetch, get_entry

    selected = list(names or REGISTRY)
    if (url or sha256) and len(selected) != 1:
        raise ConfigError("--url and --sha256 apply to one entry: name it, e.g. "
                          "`nsync-bench weights fetch inception-clean --url ...`.")
    for name in selected:
        get_entry(name)  # unknown names fail before any download starts
    for name in selected:
        path = fetch(name, weights_dir, url=url, sha256=sha256, progress=RichProgress(), force=force)
        console.print(f"[green]ok[/] {name}: {path}", soft_wrap=True)
