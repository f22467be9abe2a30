"""Image validation: find every file that would crash a run halfway or be used silently wrong.

Checks, each naming the file (relative to the style folder, e.g. ``train/0042.png``):

* ``corrupt`` / ``truncated`` (error): the file does not decode completely. PIL decodes lazily,
  so a truncated PNG opens fine and fails only at ``load()`` deep inside a training step; every
  image is decoded in full here, with ``ImageFile.LOAD_TRUNCATED_IMAGES`` off.
* ``mode`` (warning): not RGB (grayscale, RGBA, palette, CMYK). Training and metrics call
  ``convert("RGB")``; an alpha channel is dropped, so transparent pixels show their stored colour.
* ``too_small`` (warning, error below a quarter of the resolution): the shorter side is below the
  training resolution, so the image is upsampled (CycleGAN's 256 px images at SD's 512 px are).
* ``duplicate``: identical bytes (sha256). Across train and test it is an error (test images leak
  into training, inflating every metric; the train copy is the one flagged, so the evaluation set
  stays fixed); within one split a warning (the image is weighted twice).
* ``missing_caption``: no ``<stem>.txt``; an error only when captions are required.
* ``bad_caption`` (error): a caption that is not UTF-8 or holds a control character (NUL, ...).
* ``empty_split`` (error) and ``ignored_file`` (warning: not an image suffix, never used).

Per-file facts (sha256, mode, size, decode error) are cached in ``<style_dir>/.validated.json``
keyed by name, byte size and mtime, so the check before every run decodes only changed files.
``quarantine`` moves files with errors (and their captions) to ``quarantine/<split>/`` with a
``REASONS.txt``; nothing is ever deleted.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageFile, UnidentifiedImageError

from nsync_bench.data.styles import IMAGE_SUFFIXES, caption_problem, ensure_style_data, get_style
from nsync_bench.errors import DataError
from nsync_bench.io import atomic_write_json

__all__ = ["CACHE_FILE", "QUARANTINE_DIR", "Problem", "ValidationReport", "check_before_run", "fix_advice",
           "inspect_image", "restore_quarantine", "validate_style"]

log = logging.getLogger(__name__)

CACHE_FILE = ".validated.json"
QUARANTINE_DIR = "quarantine"
_CACHE_VERSION = 1
Severity = Literal["error", "warning"]
CaptionPolicy = Literal["require", "warn", "ignore"]


@dataclass(frozen=True)
class Problem:
    file: str  # relative to the style folder, e.g. "train/0042.png"
    kind: str
    detail: str
    severity: Severity

    def __str__(self) -> str:
        return f"{self.file}: {self.kind}: {self.detail}"


@dataclass
class ValidationReport:
    style: str
    directory: Path
    resolution: int
    images: dict[str, int] = field(default_factory=dict)
    captions: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    quarantined: list[Problem] = field(default_factory=list)  # what --quarantine moved, and why
    decoded: int = 0  # images decoded this time (the rest came from the cache)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def summary(self, severity: Severity, limit: int = 5) -> str:
        """Counts per kind and the first ``limit`` problems, for logs and error messages."""
        chosen = [p for p in self.problems if p.severity == severity]
        counts = ", ".join(f"{k} {n}" for k, n in sorted(Counter(p.kind for p in chosen).items()))
        lines = [f"{len(chosen)} {severity}(s) in {self.style} ({counts})"]
        lines += [f"  {p}" for p in chosen[:limit]]
        if len(chosen) > limit:
            lines.append(f"  ... and {len(chosen) - limit} more")
        return "\n".join(lines)


def inspect_image(path: Path) -> dict[str, Any]:
    """Facts about one image file; decoding it completely is the only reliable corruption check."""
    data = path.read_bytes()
    facts: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest(), "error": None, "error_kind": None}
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a caller may have set it; we want the failure
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                facts.update(mode=image.mode, width=image.width, height=image.height,
                             alpha=image.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in image.info)
                image.load()
        if any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
            facts["large"] = True  # a problem row, not a raw warning on the console
    except UnidentifiedImageError:
        facts.update(error_kind="corrupt", error=f"not a readable image ({len(data)} bytes, unknown format)")
    except Image.DecompressionBombError as err:
        facts.update(error_kind="corrupt", error=f"refused as a decompression bomb ({err})")
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        kind = "truncated" if "truncat" in str(err).lower() or isinstance(err, EOFError) else "corrupt"
        facts.update(error_kind=kind, error=f"does not decode: {type(err).__name__}: {err}")
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    return facts


def _scan(style_dir: Path, splits: tuple[str, ...]) -> tuple[dict[str, list[Path]], list[Problem]]:
    files: dict[str, list[Path]] = {}
    problems = []
    for split in splits:
        folder = style_dir / split
        entries = sorted(folder.iterdir()) if folder.is_dir() else []
        files[split] = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        for path in entries:
            if path.is_file() and not path.name.startswith(".") and path.suffix.lower() not in (*IMAGE_SUFFIXES,
                                                                                               ".txt"):
                problems.append(Problem(f"{split}/{path.name}", "ignored_file",
                                        f"not an image ({', '.join(IMAGE_SUFFIXES)}): never used", "warning"))
        if not files[split]:
            what = "has no images" if folder.is_dir() else "is missing"
            problems.append(Problem(f"{split}/", "empty_split", f"the {split} split {what}", "error"))
    return files, problems


def _facts(style_dir: Path, files: dict[str, list[Path]]) -> tuple[dict[str, dict[str, Any]], int]:
    """Per-file facts, reusing cached ones whose size and mtime are unchanged; returns (facts, decoded)."""
    cache_path = style_dir / CACHE_FILE
    try:
        cached = json.loads(cache_path.read_text())
        entries = cached["files"] if cached.get("version") == _CACHE_VERSION else {}
    except (OSError, ValueError, KeyError, TypeError):
        entries = {}
    facts, decoded = {}, 0
    for split, paths in files.items():
        for path in paths:
            rel, stat = f"{split}/{path.name}", path.stat()
            entry = entries.get(rel)
            if not entry or entry.get("size") != stat.st_size or entry.get("mtime_ns") != stat.st_mtime_ns:
                entry = {**inspect_image(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
                decoded += 1
            facts[rel] = entry
    if decoded or set(facts) != set(entries):
        try:  # best effort: a read-only data root only costs a re-decode next time
            atomic_write_json(cache_path, {"version": _CACHE_VERSION, "files": facts})
        except OSError as err:
            log.debug("could not write %s: %s", cache_path, err)
    return facts, decoded


def too_small_to_train(side: int, resolution: int) -> bool:
    """An image whose shorter side is below a quarter of the training resolution is refused (upsampled
    more than 4x it is mostly interpolation); between that and the resolution it is a warning."""
    return side < resolution / 4


def _image_problems(facts: dict[str, dict[str, Any]], resolution: int, test_split: str) -> list[Problem]:
    problems = []
    for rel, entry in facts.items():
        if entry["error"]:
            problems.append(Problem(rel, entry["error_kind"], entry["error"], "error"))
            continue
        if entry["mode"] != "RGB":
            alpha = " with transparency (alpha is dropped; transparent pixels keep their stored colour)"
            from nsync_bench.data.pixels import conversion_note

            note = conversion_note(entry["mode"])
            if entry["alpha"]:
                note = note.replace(" is ", f"{alpha} is ", 1)
            problems.append(Problem(rel, "mode", note, "warning"))
        if entry.get("large"):
            problems.append(Problem(rel, "large_image", f"{entry['width']}x{entry['height']} pixels exceeds PIL's "
                                    "decompression-bomb threshold; fine if you trust the file, slow to load",
                                    "warning"))
        side = min(entry["width"], entry["height"])
        if side < resolution:
            fatal = too_small_to_train(side, resolution)
            problems.append(Problem(rel, "too_small", f"{entry['width']}x{entry['height']} is smaller than the "
                                    f"training resolution {resolution}" + (
                                        " by more than 4x" if fatal else f"; it is upsampled to {resolution}"),
                                    "error" if fatal else "warning"))
    by_hash: dict[str, list[str]] = {}
    for rel, entry in sorted(facts.items()):
        by_hash.setdefault(entry["sha256"], []).append(rel)
    for group in by_hash.values():
        tests = [r for r in group if r.split("/", 1)[0] == test_split]
        others = [r for r in group if r not in tests]
        if tests and others:
            for rel in others:  # flag the training copy: the evaluation set stays as published
                problems.append(Problem(rel, "duplicate", f"same bytes as {tests[0]} (train/test leakage)", "error"))
            group = tests
        for rel in group[1:]:
            problems.append(Problem(rel, "duplicate", f"same bytes as {group[0]}", "warning"))
    return problems


def _quarantine(style_dir: Path, problems: list[Problem]) -> list[Problem]:
    """Move each file with an error (and its caption) to ``quarantine/<split>/``; log why in REASONS.txt."""
    moved: list[Problem] = []
    done: set[str] = set()
    for problem in problems:
        source = style_dir / problem.file
        if problem.severity != "error" or problem.kind in ("missing_caption", "empty_split") or not source.is_file():
            continue
        split = problem.file.split("/", 1)[0]
        folder = style_dir / QUARANTINE_DIR / split
        folder.mkdir(parents=True, exist_ok=True)
        if problem.file not in done:
            dest, n = folder / source.name, 1
            while dest.exists() or dest.with_suffix(".txt").exists():
                dest, n = folder / f"{source.stem}-{n}{source.suffix}", n + 1
            os.replace(source, dest)
            if source.with_suffix(".txt").is_file():
                os.replace(source.with_suffix(".txt"), dest.with_suffix(".txt"))
            done.add(problem.file)
            log.info("quarantined %s -> %s (%s)", problem.file, dest.relative_to(style_dir), problem.kind)
        with (style_dir / QUARANTINE_DIR / "REASONS.txt").open("a", encoding="utf-8") as reasons:
            reasons.write(f"{problem.file}\t{problem.kind}\t{problem.detail}\n")
        moved.append(problem)
    return moved


def validate_style(style: str, data_root: Path, resolution: int, *, quarantine: bool = False,
                   captions: CaptionPolicy = "warn") -> ValidationReport:
    """Validate ``<data_root>/<style>`` for training at ``resolution`` px; see the module docstring.

    ``captions``: ``require`` makes a missing ``.txt`` an error, ``warn`` a warning, ``ignore``
    skips the check. With ``quarantine`` the files with errors are moved aside and the returned
    report describes the folder afterwards, with the moved files in ``quarantined``.
    """
    info = get_style(style)
    style_dir = ensure_style_data(style, Path(data_root))  # renders toy styles; teaches fetch/import otherwise
    files, problems = _scan(style_dir, info.splits)
    facts, decoded = _facts(style_dir, files)
    problems += _image_problems(facts, resolution, info.test_split)
    report = ValidationReport(style, style_dir, resolution, decoded=decoded)
    for split, paths in files.items():
        report.images[split] = len(paths)
        have = [p for p in paths if p.with_suffix(".txt").is_file()]
        report.captions[split] = len(have)
        for image in have:  # a caption that does not decode would stop the run after its data was prepared
            problem = caption_problem(image.with_suffix(".txt").read_bytes())[1]
            if problem is not None:
                problems.append(Problem(f"{split}/{image.stem}.txt", "bad_caption", f"the caption {problem}", "error"))
        if captions != "ignore":
            severity: Severity = "error" if captions == "require" else "warning"
            problems += [Problem(f"{split}/{p.name}", "missing_caption", f"no caption file {p.stem}.txt", severity)
                         for p in paths if p not in have]
    order = {"error": 0, "warning": 1}
    report.problems = sorted(problems, key=lambda p: (order[p.severity], p.file, p.kind))
    if quarantine and report.errors:
        moved = _quarantine(style_dir, report.errors)
        report = validate_style(style, data_root, resolution, captions=captions)
        report.quarantined = moved
    return report


def fix_advice(report: ValidationReport) -> str:
    """What to do about a report's errors: images too small for the resolution are not corrupt files."""
    small = [p for p in report.errors if p.kind == "too_small"]
    other = [p for p in report.errors if p.kind != "too_small"]
    lines = []
    if small:
        share = f"all {len(small)}" if len(small) == sum(report.images.values()) else f"{len(small)}"
        lines.append(f"{share} image(s) are far smaller than the training resolution {report.resolution} px: a "
                     "resolution problem, not corrupt files. Train at a resolution that suits them (another "
                     "--profile, or --set model.resolution=N) or replace them with larger images; do not "
                     "quarantine them.")
    if other:
        also = (" (it also moves the too-small ones; `nsync-bench data restore "
                f"{report.style}` moves quarantined files back)") if small else ""
        lines.append(f"Fix the other files, or move them aside with `nsync-bench data validate {report.style} "
                     f"--resolution {report.resolution} --quarantine`{also}.")
    return "\n".join(lines)


def restore_quarantine(style: str, data_root: Path) -> tuple[list[str], list[str]]:
    """Move every quarantined file (and its caption) back to its split; returns (restored, kept back).

    A file whose name is taken again in the split stays in quarantine (nothing is overwritten).
    """
    style_dir = Path(data_root) / get_style(style).name
    root = style_dir / QUARANTINE_DIR
    restored: list[str] = []
    kept: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            dest = style_dir / folder.name / path.name
            caption = path.with_suffix(".txt")
            if dest.exists() or (caption.is_file() and dest.with_suffix(".txt").exists()):
                kept.append(f"{folder.name}/{path.name}")
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            if caption.is_file():
                os.replace(caption, dest.with_suffix(".txt"))
            restored.append(f"{folder.name}/{path.name}")
        if not any(folder.iterdir()):
            folder.rmdir()
    reasons = root / "REASONS.txt"
    if root.is_dir() and not any(p for p in root.iterdir() if p != reasons):
        reasons.unlink(missing_ok=True)
        root.rmdir()
    return restored, kept


def check_before_run(style: str, data_root: Path, resolution: int) -> ValidationReport:
    """The check every run makes: errors stop it before training starts, warnings are logged."""
    report = validate_style(style, data_root, resolution, captions="ignore")
    if report.errors:
        raise DataError(f"{report.summary('error')}\n{fix_advice(report)}")
    if report.warnings:
        log.warning("%s", report.summary("warning", limit=3))
    return report
