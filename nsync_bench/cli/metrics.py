"""``nsync-bench metrics DIR_A DIR_B``: score any two folders of images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from nsync_bench.cli.app import app, console

# ruff: noqa: UP045 - typer needs Optional


@app.command()
def metrics(
    dir_a: Annotated[Path, typer.Argument(help="Generated images (CSD scores these against B's style).")],
    dir_b: Annotated[Path, typer.Argument(help="Reference (real) images.")],
    names: Annotated[Optional[str], typer.Option(
        "--metrics", help="Comma list of metric names, e.g. fid,csd (those metrics/plugins.toml registers).")] = None,
    mode: Annotated[Optional[str], typer.Option(help="Inception mode: clean, legacy_pytorch, nsync-legacy.")] = None,
    legacy_batch_size: Annotated[Optional[int], typer.Option(
        help="nsync-legacy: gan-metrics-pytorch's batch size; FID/KID use the first N // b * b images (50).")] = None,
    profile: Annotated[str, typer.Option(help="Profile whose metric settings to use (smoke: offline).")] = "sd15",
    weights_dir: Annotated[Optional[Path], typer.Option(help="Metric weights ($NSYNC_BENCH_WEIGHTS_DIR).")] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse cached features.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Score DIR_A against DIR_B with FID, KID, CMMD and CSD; a table, or JSON with --json."""
    from pydantic import ValidationError

    from nsync_bench import paths
    from nsync_bench.cli.progress import RichProgress
    from nsync_bench.config.recipes import load_profile
    from nsync_bench.config.run_config import MetricsConfig
    from nsync_bench.errors import ConfigError
    from nsync_bench.metrics.images import list_image_files
    from nsync_bench.metrics.scoring import score_image_sets
    from nsync_bench.progress import NullProgress

    settings = dict(load_profile(profile).config.get("metrics", {}))
    if names:
        settings["names"] = [n.strip() for n in names.split(",") if n.strip()]
    if mode:
        settings["inception_mode"] = mode
    if legacy_batch_size is not None:
        settings["legacy_batch_size"] = legacy_batch_size
    try:
        config = MetricsConfig.model_validate(settings)
    except ValidationError as err:  # one line per bad setting, as `run --set` says it
        problems = [f"metrics.{'.'.join(str(p) for p in item['loc'])} = {item.get('input')!r}: {item['msg']}"
                    for item in err.errors()]
        raise ConfigError("invalid metric settings: " + "; ".join(problems)) from None
    report = score_image_sets(
        list_image_files(dir_a), list_image_files(dir_b), config, weights_dir=weights_dir,
        cache_root=paths.cache_dir() / "features" if cache else None,
        progress=NullProgress() if as_json else RichProgress(),
    )
    if as_json:
        payload = {
            "metrics": {k: vars(v) for k, v in report.results.items()},
            "inception_mode": config.inception_mode,
            "images": {"a": report.generated.note(), "b": report.real.note()},
            "cache": {"hits": report.cache_hits, "misses": report.cache_misses},
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    from rich.table import Table

    table = Table("metric", "value", "better", "n A used", "n B used", "implementation", title=f"{dir_a} vs {dir_b}")
    for result in report.results.values():
        value = f"{result.value:.6g}" + (f" ± {result.std:.3g}" if result.std is not None else "")
        table.add_row(result.name.upper(), value, "↓ lower" if result.direction == "lower" else "↑ higher",
                      _count(result.n_generated, result.n_generated_available),
                      _count(result.n_real, result.n_real_available), result.implementation)
    console.print(table)
    console.print(f"A: {report.generated.note()}   B: {report.real.note()}", soft_wrap=True)


def _count(used: int, available: int) -> str:
    return str(used) if used == available else f"{used} of {available}"
