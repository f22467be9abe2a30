"""``nsync-bench data captions``: write a ``<stem>.txt`` caption beside every image of a style."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from nsync_bench.cli.app import console, data_app
from nsync_bench.cli.options import DataRootOption, StyleArgument

# ruff: noqa: UP045
# (Typer needs Optional rather than X | None in option annotations.)


@data_app.command("captions")
def captions(
    style: StyleArgument,
    captioner: Annotated[
        str, typer.Option(help="files (your own .txt) | template (fixed --text) | blip | internvl.")
    ] = "files",
    model: Annotated[Optional[str], typer.Option(help="Captioner model: hub id or local directory.")] = None,
    text: Annotated[Optional[str], typer.Option(help="Caption of the template captioner.")] = None,
    split: Annotated[
        Optional[list[str]], typer.Option(help="Split to caption (repeatable; default: train and test).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing .txt captions.")] = False,
    trust_remote_code: Annotated[
        bool, typer.Option("--trust-remote-code", help="Allow internvl to run the model repository's Python code.")
    ] = False,
    data_root: DataRootOption = None,
    device: Annotated[Optional[str], typer.Option(help="auto (default: CUDA when there is one), cuda or cpu, for "
                                                       "model captioners.")] = None,
) -> None:
    """Caption a style's images (cached by image content); existing captions are kept unless --overwrite."""
    from nsync_bench.cli.progress import RichProgress
    from nsync_bench.data.captions import caption_style, make_captioner

    options: dict[str, Any] = {"model": model, "text": text, "device": device}
    options = {key: value for key, value in options.items() if value is not None}
    if trust_remote_code:
        options["trust_remote_code"] = True
    instance = make_captioner(captioner, **options)
    report = caption_style(style, data_root, instance, splits=split, overwrite=overwrite, progress=RichProgress())

    from rich.table import Table

    table = Table(title=f"captions: {report.style}", show_header=False)
    table.add_row("captioner", report.captioner)
    table.add_row("model id", report.model_id)
    table.add_row("splits", ", ".join(report.splits))
    table.add_row("images", str(report.images))
    table.add_row("captioned (computed)", str(report.captioned))
    table.add_row("cache hits", str(report.cache_hits))
    table.add_row("kept (existing .txt)", str(report.kept))
    table.add_row("written", str(report.written))
    if report.empty:
        table.add_row("empty (not written)", f"{len(report.empty)}, e.g. {', '.join(report.empty[:3])}")
    table.add_row("record", str(report.record))
    console.print(table, soft_wrap=True)
    if report.kept and instance.writes and not overwrite:
        console.print(f"{report.kept} existing caption(s) kept; pass --overwrite to replace them.")
