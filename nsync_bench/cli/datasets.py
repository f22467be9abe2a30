"""``nsync-bench data fetch | import | validate | list``: get a style's images, check them, see what exists."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer

from nsync_bench.cli.app import console, data_app
from nsync_bench.cli.options import DataRootOption, StyleArgument

# ruff: noqa: UP045
# (Typer needs Optional rather than X | None in option annotations.)

ForceOption = Annotated[
    bool, typer.Option("--force", help="Replace existing data (only once the new data is complete).")
]
DEFAULT_RESOLUTION = 512  # SD 1.5's training resolution, the released code's (vae.sample_size)
WARNINGS_PER_KIND = 10  # CycleGAN's 256 px images all warn at 512 px: list a few, count the rest


@data_app.command("fetch")
def fetch(
    style: StyleArgument,
    url: Annotated[Optional[str], typer.Option(help="Download from this URL (a mirror), not the manifest's.")] = None,
    sha256: Annotated[Optional[str], typer.Option(help="Expected sha256 of the archive (pins a hash).")] = None,
    force: ForceOption = False,
    data_root: DataRootOption = None,
) -> None:
    """Download a style's archive, verify it, extract it safely and move it into the data root."""
    from nsync_bench import paths
    from nsync_bench.cli.progress import RichProgress
    from nsync_bench.data.fetch import fetch_style

    result = fetch_style(style, paths.data_root(data_root), url=url, sha256=sha256, force=force,
                         progress=RichProgress())
    if result.skipped:
        console.print(f"{style} is ready in {result.directory} (nothing downloaded; --force fetches again)",
                      soft_wrap=True)
        return
    counts = ", ".join(f"{split} {n}" for split, n in result.images.items())
    console.print(f"[bold green]fetched {style}[/] into {result.directory}: {counts} images", soft_wrap=True)
    console.print(f"sha256 {result.sha256}  size {result.size} bytes  "
                  + ("[green]verified[/]" if result.verified else "[yellow]not verified: no known hash[/]"),
                  soft_wrap=True)
    if not result.verified:
        console.print(f"Pin it: set sha256 = \"{result.sha256}\" and size = {result.size} in datasets/{style}.toml, "
                      f"or pass --sha256 {result.sha256}.", soft_wrap=True)


@data_app.command("import")
def import_command(
    style: StyleArgument,
    path: Annotated[Path, typer.Argument(help="Folder with train/ and test/ (or trainA/, testA/), or flat images.")],
    test_fraction: Annotated[float, typer.Option(help="Share of a flat folder that becomes the test split.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the split of a flat folder (same seed, same split).")] = 0,
    force: ForceOption = False,
    data_root: DataRootOption = None,
    caption_encoding: Annotated[str, typer.Option(help="Encoding of the source's .txt captions (stored as "
                                                  "UTF-8), e.g. latin-1.")] = "utf-8",
) -> None:
    """Copy a local collection (images and .txt captions) into the data root, split by seed if needed."""
    from nsync_bench import paths
    from nsync_bench.data.importer import import_style

    report = import_style(style, path, paths.data_root(data_root), test_fraction=test_fraction, seed=seed,
                          force=force, caption_encoding=caption_encoding)
    if report.skipped_links:
        console.print(f"[yellow]skipped {len(report.skipped_links)} symbolic link(s)[/] (not followed: an import "
                      f"copies image files), e.g. {report.skipped_links[0]}", soft_wrap=True)
    counts = ", ".join(f"{split} {n} ({report.captions[split]} captioned)" for split, n in report.images.items())
    how = f"split by seed {report.seed}" if report.split_by_seed else "splits kept from the source"
    console.print(f"[bold green]imported {style}[/] into {report.directory}: {counts}; {how}", soft_wrap=True)
    console.print(f"Next: `nsync-bench data validate {style}`", soft_wrap=True)


@data_app.command("validate")
def validate(
    style: StyleArgument,
    resolution: Annotated[Optional[int], typer.Option(help=f"Training resolution in px (default {DEFAULT_RESOLUTION}, "
                                                           "or the --profile's).")] = None,
    profile: Annotated[Optional[str], typer.Option(help="Take the resolution from this profile.")] = None,
    quarantine: Annotated[bool, typer.Option("--quarantine", help="Move files with errors to quarantine/ "
                                             "(with REASONS.txt); nothing is deleted.")] = False,
    require_captions: Annotated[bool, typer.Option("--require-captions",
                                                   help="A missing .txt caption is an error.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help=f"List every warning (default: {WARNINGS_PER_KIND} "
                                           "per kind; errors are always all listed).")] = False,
    data_root: DataRootOption = None,
) -> None:
    """Check every image: decodes fully, RGB, large enough, no duplicates, captions. Exit 1 on errors."""
    from rich.table import Table

    from nsync_bench import paths
    from nsync_bench.data.validate import validate_style

    if resolution is None:
        resolution = _profile_resolution(profile) if profile else DEFAULT_RESOLUTION
    report = validate_style(style, paths.data_root(data_root), resolution, quarantine=quarantine,
                            captions="require" if require_captions else "warn")
    for title, problems in (("moved to quarantine", report.quarantined), ("problems", report.problems)):
        if not problems:
            continue
        table = Table("file", "kind", "severity", "detail", title=f"{style}: {title}")
        shown: Counter[tuple[str, str]] = Counter()
        for problem in problems:
            key = (problem.severity, problem.kind)
            shown[key] += 1
            if problem.severity == "warning" and not show_all and shown[key] > WARNINGS_PER_KIND:
                continue
            colour = "red" if problem.severity == "error" else "yellow"
            table.add_row(problem.file, problem.kind, f"[{colour}]{problem.severity}[/]", problem.detail)
        for (severity, kind), n in shown.items():
            if severity == "warning" and not show_all and n > WARNINGS_PER_KIND:
                table.add_row("...", kind, "[yellow]warning[/]", f"{n - WARNINGS_PER_KIND} more (--all lists them)")
        console.print(table)
    counts = ", ".join(f"{split} {n} ({report.captions[split]} captioned)" for split, n in report.images.items())
    console.print(f"{style} at {resolution} px: {counts}; {len(report.errors)} error(s), "
                  f"{len(report.warnings)} warning(s)", soft_wrap=True)
    if report.quarantined:
        console.print(f"{len({p.file for p in report.quarantined})} file(s) moved to "
                      f"{report.directory / 'quarantine'} (reasons in REASONS.txt)", soft_wrap=True)
    if report.errors:
        from nsync_bench.data.validate import fix_advice

        hint = "" if quarantine else f" {fix_advice(report)}"
        console.print(f"[bold red]{len(report.errors)} error(s)[/]; runs of {style} refuse to start.{hint}",
                      soft_wrap=True)
        raise typer.Exit(1)


@data_app.command("restore")
def restore(style: StyleArgument, data_root: DataRootOption = None) -> None:
    """Move quarantined files (and their captions) back into their splits; nothing is overwritten."""
    from nsync_bench import paths
    from nsync_bench.data.validate import restore_quarantine

    restored, kept = restore_quarantine(style, paths.data_root(data_root))
    console.print(f"{style}: {len(restored)} file(s) moved back from quarantine", soft_wrap=True)
    if kept:
        console.print(f"[yellow]{len(kept)} file(s) kept in quarantine[/] (a file of that name is back in the "
                      f"split): {', '.join(kept[:5])}", soft_wrap=True)


def _profile_resolution(profile: str) -> int:
    from nsync_bench.config.recipes import load_profile
    from nsync_bench.config.run_config import ModelConfig

    return int(load_profile(profile).config.get("model", {}).get("resolution", ModelConfig().resolution))


@data_app.command("list")
def list_styles(data_root: DataRootOption = None) -> None:
    """Each style: its source, images per split, and whether captions and negative sets exist."""
    from rich.table import Table

    from nsync_bench import paths
    from nsync_bench.data.styles import style_names, style_status

    root = paths.data_root(data_root)
    table = Table(title=f"styles in {root}")
    table.add_column("style", no_wrap=True)
    for column in ("source", "train", "test", "captions", "negatives", "features"):
        table.add_column(column, overflow="fold")
    missing = []
    for name in style_names():
        status = style_status(name, root)
        info = status.info
        train = test = captions = "-"
        if status.present:
            train, test = (str(status.images[s]) for s in info.splits)
            total, captioned = sum(status.images.values()), sum(status.captions.values())
            captions = "yes" if total and captioned == total else ("partial" if captioned else "no")
        elif info.source == "archive":
            missing.append(f"nsync-bench data fetch {name}")
        elif info.source == "local":
            missing.append(f"nsync-bench data import {name} PATH")
        table.add_row(name, info.source, train, test, captions, str(status.negative_sets), "n/a")
    console.print(table)
    console.print("negatives: cached NSYNC negative sets. features: n/a, the feature cache is keyed by image "
                  "content and extractor, so naming its style means hashing every image (runs reuse it anyway). "
                  "Procedural styles are rendered on first use.", soft_wrap=True)
    if missing:
        console.print("Get the others with: " + "; ".join(f"`{m}`" for m in missing), soft_wrap=True)
