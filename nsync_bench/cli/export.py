"""``nsync-bench export``: a run's adapter in the format diffusers, AUTOMATIC1111, ComfyUI or kohya read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nsync_bench.cli.app import app, console
from nsync_bench.cli.options import TrackingUriOption

# ruff: noqa: UP045


@app.command()
def export(
    source: Annotated[str, typer.Argument(help="A finished run's directory, or its MLflow run id.")],
    fmt: Annotated[str, typer.Option("--format", help="diffusers | a1111 | comfyui | kohya")] = "a1111",
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: ./exports/<name>-<format>).")] = None,
    name: Annotated[Optional[str], typer.Option(help="File name; the embedding's name in the webuis.")] = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Export an adapter (with its model card) for diffusers, AUTOMATIC1111, ComfyUI or kohya-ss."""
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per file downloaded
    from nsync_bench.export.formats import FORMATS
    from nsync_bench.export.formats import export as run_export

    if fmt not in FORMATS:
        from nsync_bench.errors import NsyncBenchError

        raise NsyncBenchError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    target_dir = out or Path("exports") / f"{name or Path(source.rstrip('/')).name}-{fmt}"
    target = run_export(source, fmt, target_dir, name=name, tracking_uri=tracking_uri)
    console.print(f"[bold green]exported[/] {target}")
    console.print(f"model card: {target.parent / 'README.md'}")
