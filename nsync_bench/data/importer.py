"""``data import``: copy a local image collection into ``<data_root>/<style>/{train,test}/``.

Ghibli and illustrator styles have no public archive (docs/fidelity.md §5),
so users bring their own folder. A folder that already has splits (``train/`` + ``test/``, or
CycleGAN's ``trainA/`` + ``testA/``) keeps them; a flat folder is split with a seeded shuffle so
that two people importing the same files with the same seed get the same test set, which the
benchmark's evaluation prompts and real-image statistics depend on. Captions (``<stem>.txt``)
travel with their images; file stems are kept because captions, negatives and per-image scores
are keyed by stem. The style appears atomically: it is assembled in a temporary folder beside
the destination and renamed into place, so an interrupted import leaves nothing half-written.

Only what is there is copied: a symbolic link (``x.png -> /etc/passwd``) is skipped with a
warning, never followed; every image must decode completely and every caption must decode (UTF-8, or
``--caption-encoding``) into printable text, else the import is refused naming the files and
nothing is written. Captions are stored as UTF-8.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from nsync_bench.data.archive import install_dir
from nsync_bench.data.styles import IMAGE_SUFFIXES, get_style
from nsync_bench.errors import ConfigError, DataError

__all__ = ["ImportReport", "detect_splits", "import_style", "seeded_split", "split_images"]

log = logging.getLogger(__name__)

SPLIT_ALIASES: dict[str, tuple[str, ...]] = {"train": ("train", "trainA"), "test": ("test", "testA")}
_ALL_ALIASES = frozenset(a for aliases in SPLIT_ALIASES.values() for a in aliases)


@dataclass
class ImportReport:
    style: str
    directory: Path
    source: Path
    images: dict[str, int] = field(default_factory=dict)
    captions: dict[str, int] = field(default_factory=dict)
    split_by_seed: bool = False  # True when the source had no splits and --seed decided them
    seed: int | None = None
    skipped_links: list[str] = field(default_factory=list)  # symbolic links found and not followed


def split_images(folder: Path, skipped: list[str] | None = None) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (stable across file systems). Symbolic links are
    left out (and listed in ``skipped``): an import copies images, not whatever a name points at."""
    entries = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    links = [p for p in entries if p.is_symlink()]
    if skipped is not None:
        skipped += [str(p) for p in links]
    images = [p for p in entries if not p.is_symlink() and p.is_file()]
    by_stem: dict[str, list[str]] = {}
    for path in images:
        by_stem.setdefault(path.stem, []).append(path.name)
    clashes = [names for names in by_stem.values() if len(names) > 1]
    if clashes:
        raise DataError(f"{folder} has images sharing a file stem, e.g. {clashes[0]}; captions, negatives and "
                        "scores are keyed by stem: rename or remove one of each pair.")
    return images


def detect_splits(source: Path) -> dict[str, Path] | None:
    """``{"train": dir, "test": dir}`` when ``source`` has split folders; None for a flat folder.

    A folder holding nothing but one sub-folder (an archive's top level) is looked into.
    """
    entries = [p for p in source.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in _ALL_ALIASES:
        return detect_splits(entries[0])
    found: dict[str, Path] = {}
    for split, aliases in SPLIT_ALIASES.items():
        hits = [source / a for a in aliases if (source / a).is_dir()]
        if len(hits) > 1:
            raise DataError(f"{source} has both {hits[0].name}/ and {hits[1].name}/; keep one of them.")
        if hits:
            found[split] = hits[0]
    if not found:
        return None
    if len(found) == 1:
        have = next(iter(found.values())).name
        raise DataError(f"{source} has {have}/ but not its counterpart (train/ and test/, or trainA/ and testA/); "
                        "add it, or import a flat folder to split it by seed.")
    return found


def seeded_split(names: list[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, test) names: a ``np.random.default_rng(seed)`` permutation of the sorted names.

    The test set has ``round(n * test_fraction)`` images, at least one, and leaves at least one for
    training. Sorting first makes the split independent of directory listing order.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"--test-fraction must be between 0 and 1 (exclusive); got {test_fraction}.")
    ordered = sorted(names)
    if len(ordered) < 2:
        raise DataError(f"need at least 2 images to split into train and test; found {len(ordered)}.")
    n_test = min(max(1, round(len(ordered) * test_fraction)), len(ordered) - 1)
    order = np.random.default_rng(seed).permutation(len(ordered))
    test = sorted(ordered[i] for i in order[:n_test])
    train = sorted(ordered[i] for i in order[n_test:])
    return train, test


def check_sources(images: list[Path], caption_encoding: str, skipped: list[str]) -> dict[Path, str]:
    """Every image decodes completely and every caption decodes into printable text; returns the captions.
    Raises one :class:`DataError` listing every bad file (nothing has been written yet)."""
    from nsync_bench.data.styles import caption_problem
    from nsync_bench.data.validate import inspect_image

    problems, captions = [], {}
    for path in images:
        error = inspect_image(path)["error"]
        if error:
            problems.append(f"{path}: {error}")
        caption = path.with_suffix(".txt")
        if caption.is_symlink():
            skipped.append(str(caption))
        elif caption.is_file():
            text, problem = caption_problem(caption.read_bytes(), caption_encoding)
            if problem is not None:
                problems.append(f"{caption}: {problem}")
            else:
                captions[path] = text or ""
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise DataError(f"{len(problems)} file(s) cannot be imported: {shown}. Nothing was imported. Fix or remove "
                        "them; captions in another encoding import with --caption-encoding (e.g. latin-1, cp1252).")
    return captions


def _copy(images: list[Path], folder: Path, captions: dict[Path, str]) -> int:
    """Copy images (their bytes) and their captions (as UTF-8) into ``folder``; return the captions copied."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in images:
        shutil.copyfile(path, folder / path.name, follow_symlinks=False)
        if path in captions:
            (folder / f"{path.stem}.txt").write_text(captions[path] + "\n", encoding="utf-8")
    return sum(1 for path in images if path in captions)


def import_style(style: str, source: Path, data_root: Path, *, test_fraction: float = 0.1, seed: int = 0,
                 force: bool = False, caption_encoding: str = "utf-8") -> ImportReport:
    """Copy the images (and captions) of ``source`` into ``<data_root>/<style>``.

    Refuses to touch an existing style folder unless ``force``; the old folder is then replaced
    only once the new one is complete. Writes ``IMPORT.json`` (source, seed, split lists).
    """
    info = get_style(style)
    if info.source == "procedural":
        raise DataError(f"style {style!r} is generated in code; there is nothing to import.")
    source = Path(source).expanduser().resolve()
    if not source.is_dir():
        raise DataError(f"{source} is not a folder; `data import` copies a folder of images.")
    data_root = Path(data_root)
    target = data_root / style
    if target.exists() and not force:
        raise DataError(f"{target} already exists; pass --force to replace it (the old folder is removed "
                        "only after the new one is complete).")
    report = ImportReport(style, target, source)
    splits = detect_splits(source)
    skipped = report.skipped_links
    if splits is not None:
        chosen = {info.train_split: split_images(splits["train"], skipped),
                  info.test_split: split_images(splits["test"], skipped)}
    else:
        images = split_images(source, skipped)
        if not images:
            raise DataError(f"no images in {source} (looked for {', '.join(IMAGE_SUFFIXES)}, and for "
                            "train/ + test/ sub-folders).")
        by_name = {p.name: p for p in images}
        train, test = seeded_split(list(by_name), test_fraction, seed)
        chosen = {info.train_split: [by_name[n] for n in train], info.test_split: [by_name[n] for n in test]}
        report.split_by_seed, report.seed = True, seed
    for split, images in chosen.items():
        if not images:
            raise DataError(f"the {split} split of {source} has no images.")
    captions = check_sources([p for images in chosen.values() for p in images], caption_encoding, skipped)
    for link in skipped:
        log.warning("skipped the symbolic link %s: an import copies image files, not what a link points at", link)

    data_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{style}.", suffix=".import", dir=data_root))
    try:
        prepared = work / style
        for split, images in chosen.items():
            report.captions[split] = _copy(images, prepared / split, captions)
            report.images[split] = len(images)
        record = {
            "style": style, "source": str(source), "imported_at": datetime.now(timezone.utc).isoformat(),
            "split_by_seed": report.split_by_seed, "seed": report.seed,
            "test_fraction": test_fraction if report.split_by_seed else None,
            "splits": {split: [p.name for p in images] for split, images in chosen.items()},
        }
        (prepared / "IMPORT.json").write_text(json.dumps(record, indent=2))
        install_dir(prepared, target, replace=force)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("imported %s into %s: %s", source, target, report.images)
    return report
