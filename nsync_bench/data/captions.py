"""Pluggable captioners and a content-addressed caption cache.

Training with ``prompts.mode=caption`` needs a ``<stem>.txt`` beside every image. Captioners
produce them: ``files`` (the user's own .txt files), ``template`` (one fixed text), ``blip`` and
``internvl`` (vision-language models, in ``blip.py`` and ``internvl.py``). Model captions are
cached by (captioner, model_id, sha256 of the image file bytes), so re-running after adding
images, or on a copy of a dataset, only captions what is new, and changing the model or its
settings never reuses stale captions.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nsync_bench.data.captioner import Captioner, FilesCaptioner, TemplateCaptioner
from nsync_bench.errors import ConfigError, unknown_name
from nsync_bench.io import atomic_write_text, file_sha256
from nsync_bench.progress import NullProgress, Progress

log = logging.getLogger(__name__)

CAPTIONERS: dict[str, str] = {
    "files": "nsync_bench.data.captioner:FilesCaptioner",
    "template": "nsync_bench.data.captioner:TemplateCaptioner",
    "blip": "nsync_bench.data.blip:BlipCaptioner",
    "internvl": "nsync_bench.data.internvl:InternVLCaptioner",
}
"""Name -> ``module:Class``; imported only when used, so listing names never imports torch."""


def make_captioner(name: str, **options: Any) -> Captioner:
    """Instantiate a registered captioner; an option it does not take is a teaching error."""
    if name not in CAPTIONERS:
        raise unknown_name("captioner", name, CAPTIONERS, "Write your own .txt files and use 'files' if none fits.")
    module, _, cls_name = CAPTIONERS[name].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    params = inspect.signature(cls).parameters.values()
    accepted = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no options"
        raise ConfigError(f"captioner {name!r} does not take option(s) {', '.join(unknown)}; it takes: {takes}.")
    return cls(**options)


# ------------------------------------------------------------------------------------------ cache
class CaptionCache:
    """``<root>/<captioner>/<sha256(model_id)[:12]>/<sha[:2]>/<sha>.json``, one small JSON per image."""

    def __init__(self, root: Path, captioner: str, model_id: str) -> None:
        self.captioner, self.model_id = captioner, model_id
        self.folder = root / captioner / hashlib.sha256(model_id.encode("utf-8")).hexdigest()[:12]

    def path(self, sha: str) -> Path:
        return self.folder / sha[:2] / f"{sha}.json"

    def get(self, sha: str) -> str | None:
        path = self.path(sha)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable caption cache entry %s (%s)", path, err)
            return None
        if entry.get("model_id") != self.model_id or entry.get("captioner") != self.captioner:
            return None  # a 12-hex-digit prefix collision; recompute rather than trust it
        return entry.get("caption") or None

    def put(self, sha: str, caption: str) -> None:
        entry = {"captioner": self.captioner, "model_id": self.model_id, "sha256": sha, "caption": caption}
        atomic_write_text(self.path(sha), json.dumps(entry, ensure_ascii=False) + "\n")


@dataclass
class CaptionReport:
    """What :func:`caption_style` did. ``captioned``: computed by the captioner (cache misses)."""

    style: str
    captioner: str
    model_id: str
    splits: list[str]
    images: int = 0
    captioned: int = 0
    cache_hits: int = 0
    kept: int = 0
    written: int = 0
    empty: list[str] = field(default_factory=list)
    record: Path | None = None


def caption_style(
    style: str,
    data_root: Path | None,
    captioner: Captioner,
    *,
    splits: Sequence[str] | None = None,
    overwrite: bool = False,
    cache_root: Path | None = None,
    progress: Progress | None = None,
) -> CaptionReport:
    """Write ``<stem>.txt`` beside every image of ``splits`` (default: the style's train and test).

    Existing .txt files are kept (and their images never captioned) unless ``overwrite``; the
    ``files`` captioner only checks that every image has one. Records the captioner, model_id,
    counts and date in ``<style_dir>/captions.json``. ``cache_root`` defaults to
    ``cache_dir()/captions``.
    """
    from nsync_bench.data.styles import ensure_style_data, get_style, list_images
    from nsync_bench.paths import cache_dir
    from nsync_bench.paths import data_root as default_data_root

    info = get_style(style)
    style_dir = ensure_style_data(style, default_data_root(data_root))
    splits = list(splits) if splits else [info.train_split, info.test_split]
    paths = [img.path for split in dict.fromkeys(splits) for img in list_images(style_dir, split)]
    report = CaptionReport(style, captioner.name, captioner.model_id, list(dict.fromkeys(splits)), len(paths))
    cache = CaptionCache(cache_root or cache_dir() / "captions", captioner.name, captioner.model_id)
    progress = progress or NullProgress()
    progress.start(f"captions {style} ({captioner.name})", total=len(paths))
    try:
        if not captioner.writes:
            captioner.caption_paths(paths)
            report.kept = len(paths)
            progress.advance(len(paths))
        else:
            written: dict[Path, str] = {}
            try:
                _caption_and_write(paths, captioner, cache, overwrite, report, progress, written)
            finally:  # which captioner wrote each file: part of every run's data identity
                from nsync_bench.data.identity import record_captions

                if written:
                    record_captions(style_dir, written, captioner.name, captioner.model_id)
    finally:
        progress.stop()
    if report.empty:
        log.warning("%d image(s) got an empty caption and no .txt, e.g. %s", len(report.empty), report.empty[:5])
    record = {k: v for k, v in asdict(report).items() if k not in ("style", "record")}
    record.update(empty=len(report.empty), overwrite=overwrite,
                  date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    report.record = style_dir / "captions.json"
    atomic_write_text(report.record, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    log.info("captions for %s: %s", style, {k: v for k, v in record.items() if type(v) is int})
    return report


def _caption_and_write(paths: list[Path], captioner: Captioner, cache: CaptionCache, overwrite: bool,
                       report: CaptionReport, progress: Progress, written: dict[Path, str] | None = None) -> None:
    """Keep, take from the cache, or compute (in batches, caching each batch as it finishes)."""

    def write(path: Path, caption: str) -> None:
        if not caption:
            report.empty.append(path.name)
            return
        atomic_write_text(path.with_suffix(".txt"), caption + "\n")
        report.written += 1
        if written is not None:
            written[path] = caption

    misses: list[tuple[Path, str]] = []
    for path in paths:
        if not overwrite and path.with_suffix(".txt").is_file():
            report.kept += 1
            progress.advance(1)
            continue
        sha = file_sha256(path)
        cached = cache.get(sha) if captioner.cacheable else None
        if cached is None:
            misses.append((path, sha))
            continue
        report.cache_hits += 1
        write(path, cached)
        progress.advance(1)
    for start in range(0, len(misses), max(1, captioner.batch_size)):
        batch = misses[start:start + max(1, captioner.batch_size)]
        captions = captioner.caption_paths([path for path, _ in batch])
        for (path, sha), caption in zip(batch, captions, strict=True):
            report.captioned += 1
            caption = " ".join(caption.split())  # one line: list_images reads the whole file
            if caption and captioner.cacheable:
                cache.put(sha, caption)
            write(path, caption)
        progress.advance(len(batch))


# The captioners without a model live in captioner.py; re-exported for callers that import them from here.
__all__ = ["CAPTIONERS", "CaptionCache", "CaptionReport", "Captioner", "FilesCaptioner", "TemplateCaptioner",
           "caption_style", "make_captioner"]
