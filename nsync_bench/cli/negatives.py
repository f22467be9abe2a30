"""``nsync-bench data negatives``: render (or find) a style's NSYNC negative set."""

from __future__ import annotations

from typing import Annotated

import typer

from nsync_bench.cli.app import console, data_app
from nsync_bench.cli.options import DataRootOption, ProtocolOption, SetOption, StyleArgument


@data_app.command("negatives")
def negatives(
    style: StyleArgument,
    profile: Annotated[str, typer.Option(help="Profile: its base model renders the set.")] = "smoke",
    protocol: ProtocolOption = None,
    overrides: SetOption = None,
    data_root: DataRootOption = None,
    force: Annotated[bool, typer.Option("--force", help="Render again even if cached (e.g. after a damaged "
                                        "image was reported).")] = False,
) -> None:
    """Generate the negative set NSYNC trains on (cached; `run --method nsync` does this itself)."""
    from nsync_bench import paths
    from nsync_bench.cli.progress import RichProgress
    from nsync_bench.config.recipes import resolve_config
    from nsync_bench.data.negatives import negatives_for_config

    config = resolve_config(style=style, method="nsync", profile=profile, protocol=protocol, overrides=overrides)
    images = negatives_for_config(config, paths.data_root(data_root), RichProgress(), force=force)
    folder = images[0].parent if images else None
    console.print(f"[bold green]{len(images)} negative images[/] for {style}: {folder}", soft_wrap=True)
