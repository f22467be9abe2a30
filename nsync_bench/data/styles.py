"""Style registry: one manifest per style in ``datasets/<style>.toml``, and its files on disk.

On disk a style is ``<data_root>/<style>/<split>/<stem>.<png|jpg|...>`` with an optional caption
``<stem>.txt`` beside each image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import tomllib

from nsync_bench.errors import DataError, unknown_name
from nsync_bench.resources import shipped_dir

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass(frozen=True)
class StyleInfo:
    name: str
    description: str
    source: str  # "procedural", "archive" or "local"
    initializer_token: str
    train_split: str = "train"
    test_split: str = "test"
    license: str = ""


@dataclass(frozen=True)
class StyleImage:
    path: Path
    caption: str | None


@cache
def _manifests() -> dict[str, StyleInfo]:
    styles = {}
    for path in sorted(shipped_dir("datasets").glob("*.toml")):
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        info = StyleInfo(
            name=data["name"],
            description=data.get("description", ""),
            source=data["source"],
            initializer_token=data["initializer_token"],
            train_split=data.get("train_split", "train"),
            test_split=data.get("test_split", "test"),
            license=data.get("license", ""),
        )
        styles[info.name] = info
    return styles


def style_names() -> list[str]:
    return sorted(_manifests())


def get_style(name: str) -> StyleInfo:
    styles = _manifests()
    if name not in styles:
        raise unknown_name("style", name, styles, "List them with `nsync-bench data list`.")
    return styles[name]


def ensure_style_data(name: str, data_root: Path) -> Path:
    """Return ``<data_root>/<name>``, rendering procedural styles on first use.

    A missing downloaded or imported style is an error that says how to get it.
    """
    info = get_style(name)
    directory = data_root / name
    if (directory / info.train_split).is_dir() and (directory / info.test_split).is_dir():
        return directory
    if info.source == "procedural":
        from nsync_bench.data.toy import render_toy_style

        log.info("rendering procedural style %s into %s", name, directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        render_toy_style(name, directory)
        return directory
    verb = f"nsync-bench data fetch {name}" if info.source == "archive" else f"nsync-bench data import {name} PATH"
    raise DataError(f"style {name!r} has no data under {directory}; get it with `{verb}`.")


def list_images(style_dir: Path, split: str) -> list[StyleImage]:
    """The images of one split, sorted by file name, each with its caption if a ``.txt`` exists."""
    folder = style_dir / split
    if not folder.is_dir():
        raise DataError(f"missing split folder {folder}")
    images = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        caption_path = path.with_suffix(".txt")
        caption = caption_path.read_text(encoding="utf-8").strip() if caption_path.is_file() else None
        images.append(StyleImage(path, caption))
    if not images:
        raise DataError(f"no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return images


def require_captions(images: list[StyleImage]) -> list[str]:
    missing = [img.path.name for img in images if not img.caption]
    if missing:
        raise DataError(
            f"{len(missing)} image(s) have no caption, e.g. {missing[:3]}; write a .txt beside each image "
            "or run `nsync-bench data captions` (or use --set prompts.mode=templates)."
        )
    return [img.caption or "" for img in images]
