"""``data fetch``: download a style's archive, verify it, extract it safely, put it in place atomically.

Steps, each of which can fail without leaving a half-written style:

1. download to ``<data_root>/.<style>-<url hash>.part`` (resumed with HTTP Range after an interruption);
2. verify the sha256 (``--sha256`` or the manifest's) and the size; a mismatch deletes the ``.part``;
3. extract into a fresh temporary folder inside ``<data_root>`` with :func:`safe_extract`, which
   refuses absolute paths, ``..`` and escaping links (:mod:`nsync_bench.data.archive`);
4. move each archive folder of the manifest's ``archive_splits`` (e.g. ``monet2photo/trainA``) to
   our split (``train``), keeping only images and ``.txt`` captions;
5. write ``SOURCE.json`` (url, sha256, size, date, counts) and rename the folder to ``<data_root>/<style>``.

The CycleGAN archives' hashes are not known in advance: the first fetch records what it got in
``SOURCE.json`` and logs it so it can be pinned in the manifest (or passed as ``--sha256``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from nsync_bench.data.archive import install_dir, safe_extract
from nsync_bench.data.importer import detect_splits
from nsync_bench.data.styles import IMAGE_SUFFIXES, StyleInfo, ensure_style_data, get_style
from nsync_bench.download import download
from nsync_bench.errors import DataError
from nsync_bench.progress import NullProgress, Progress

__all__ = ["SOURCE_FILE", "FetchResult", "fetch_style", "part_path"]

log = logging.getLogger(__name__)

SOURCE_FILE = "SOURCE.json"


@dataclass
class FetchResult:
    style: str
    directory: Path
    skipped: bool = False  # already present (or procedural): nothing downloaded
    url: str = ""
    sha256: str = ""
    size: int = 0
    verified: bool = False  # the sha256 matched a known one (manifest or --sha256)
    images: dict[str, int] = field(default_factory=dict)


def part_path(data_root: Path, style: str, url: str) -> Path:
    """Where the download of ``url`` for ``style`` accumulates; another URL never resumes this one."""
    return Path(data_root) / f".{style}-{hashlib.sha256(url.encode()).hexdigest()[:10]}.part"


def _has_splits(info: StyleInfo, directory: Path) -> bool:
    return all((directory / split).is_dir() for split in info.splits)


def fetch_style(
    style: str,
    data_root: Path,
    *,
    url: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    opener: Callable[..., Any] = urllib.request.urlopen,
    timeout: float = 60.0,
) -> FetchResult:
    """Make ``<data_root>/<style>`` hold the style's archive data; see the module docstring.

    ``url``/``sha256`` override the manifest (a mirror; a hash to pin). Existing data is left
    alone unless ``force``; it is then replaced only after the new data is complete.
    """
    info = get_style(style)
    data_root = Path(data_root)
    target = data_root / style
    if info.source == "procedural":
        return FetchResult(style, ensure_style_data(style, data_root), skipped=True)
    source = url or info.url
    if not source:
        raise DataError(f"style {style!r} has no public archive ({info.source} source); import your own "
                        f"collection with `nsync-bench data import {style} PATH` (or pass --url).")
    if target.exists() and not force:
        if _has_splits(info, target):
            log.info("%s is already present in %s; pass --force to fetch it again", style, target)
            return FetchResult(style, target, skipped=True)
        raise DataError(f"{target} exists but lacks {info.train_split}/ or {info.test_split}/; "
                        "pass --force to replace it.")
    expected = (sha256 or "").lower() or info.sha256  # a mirror serves the same bytes
    expected_size = info.size

    data_root.mkdir(parents=True, exist_ok=True)
    part = part_path(data_root, style, source)
    digest = download(source, part, label=style, progress=progress or NullProgress(), opener=opener,
                      timeout=timeout, expected_size=expected_size,
                      retry_hint=f"rerun `nsync-bench data fetch {style}` to resume from {part}")
    size = part.stat().st_size
    result = FetchResult(style, target, url=source, sha256=digest, size=size, verified=bool(expected))
    try:
        _verify(style, source, digest, size, expected, expected_size)
        _install(info, part, target, force, result)
    except BaseException:
        part.unlink(missing_ok=True)  # a bad or unusable archive is not worth resuming
        raise
    part.unlink(missing_ok=True)
    if not expected:
        log.warning("%s: no checksum to verify against; downloaded sha256=%s size=%d (recorded in %s). "
                    "Pin it in datasets/%s.toml or pass --sha256 next time.", style, digest, size,
                    target / SOURCE_FILE, style)
    return result


def _verify(style: str, url: str, digest: str, size: int, expected: str | None, expected_size: int | None) -> None:
    if expected and digest != expected:
        raise DataError(f"checksum mismatch for {style!r} from {url}: sha256 expected {expected}, got {digest}; "
                        "the download was deleted. If you trust this source, rerun with "
                        f"`nsync-bench data fetch {style} --sha256 {digest}`.")
    if not expected and expected_size and size != expected_size:
        raise DataError(f"size mismatch for {style!r} from {url}: expected {expected_size} bytes, got {size}; "
                        "the download was deleted.")


def _install(info: StyleInfo, archive: Path, target: Path, force: bool, result: FetchResult) -> None:
    """Extract into a temporary folder beside ``target``, map the splits, rename into place."""
    work = Path(tempfile.mkdtemp(prefix=f".{info.name}.", suffix=".fetch", dir=target.parent))
    try:
        extracted = work / "extracted"
        extracted.mkdir()
        safe_extract(archive, extracted)
        prepared = work / info.name
        for split, folder in _split_folders(info, extracted).items():
            result.images[split] = _move_images(folder, prepared / split, extracted)
        _write_source(prepared, result, dict(info.archive_splits))
        install_dir(prepared, target, replace=force)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _split_folders(info: StyleInfo, extracted: Path) -> dict[str, Path]:
    """Our split name -> folder inside the extracted archive."""
    mapping = dict(info.archive_splits)
    if not mapping:
        found = detect_splits(extracted)
        if found is None:
            raise DataError(f"the archive for {info.name!r} has no train/test (or trainA/testA) folders.")
        return {info.train_split: found["train"], info.test_split: found["test"]}
    folders = {}
    for split in info.splits:
        if split not in mapping:
            raise DataError(f"datasets/{info.name}.toml: [archive_splits] lacks {split!r}.")
        folders[split] = _find_folder(info.name, extracted, mapping[split])
    return folders


def _find_folder(style: str, extracted: Path, rel: str) -> Path:
    """The archive folder ``rel``; a mirror with another top folder is matched by the last component."""
    exact = extracted / rel
    if exact.is_dir():
        return exact
    name = PurePosixPath(rel).name
    hits = [p for p in extracted.rglob(name) if p.is_dir() and not p.is_symlink()]
    if len(hits) == 1:
        log.info("%s: using %s for %s", style, hits[0].relative_to(extracted), rel)
        return hits[0]
    top = sorted(p.name for p in extracted.iterdir())
    raise DataError(f"the archive for {style!r} has no folder {rel!r} (found {len(hits)} named {name!r}; "
                    f"top level: {top[:10]}). Is the URL right?")


def _move_images(folder: Path, dest: Path, root: Path) -> int:
    """Move images and their ``.txt`` captions from ``folder`` to ``dest``; return the image count."""
    dest.mkdir(parents=True)
    count = 0
    for path in sorted(folder.iterdir()):
        suffix = path.suffix.lower()
        if suffix not in (*IMAGE_SUFFIXES, ".txt"):
            continue
        if path.is_symlink():  # checked to point inside the archive; store a real file
            real = path.resolve()
            if not real.is_file() or root.resolve() not in real.parents:
                raise DataError(f"refusing the archive: {path.name} links outside it or to a folder")
            shutil.copyfile(real, dest / path.name)
        elif path.is_file():
            os.replace(path, dest / path.name)
        else:
            continue
        count += suffix in IMAGE_SUFFIXES
    if not count:
        raise DataError(f"no images in the archive folder {folder.relative_to(root)}")
    return count


def _write_source(folder: Path, result: FetchResult, splits: dict[str, str]) -> None:
    """Provenance of the data: what was downloaded from where, when, and what it held."""
    record = {
        "style": result.style, "url": result.url, "sha256": result.sha256, "size": result.size,
        "verified": result.verified, "fetched_at": datetime.now(timezone.utc).isoformat(),
        "archive_splits": splits, "images": result.images,
    }
    (folder / SOURCE_FILE).write_text(json.dumps(record, indent=2))
