"""A style's files on disk; its manifest (``datasets/<style>.toml``) is read in ``nsync_bench.config.styles``
(re-exported here: ``StyleInfo``, ``get_style``, ``style_names``).

On disk a style is ``<data_root>/<style>/<split>/<stem>.<png|jpg|...>`` with an optional caption
``<stem>.txt`` beside each image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from nsync_bench.config.styles import StyleInfo, get_style, style_names
from nsync_bench.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass(frozen=True)
class StyleImage:
    path: Path
    caption: str | None


@dataclass(frozen=True)
class StyleData:
    """A style's files as one run consumes them, resolved once (:func:`resolve_style_data`) and passed down:
    the manifest, the data root, the style's folder and its two splits (sorted, with captions)."""

    info: StyleInfo
    data_root: Path
    style_dir: Path
    train: list[StyleImage]
    test: list[StyleImage]


def resolve_style_data(name: str, data_root: Path) -> StyleData:
    """The style's manifest and files under ``data_root`` (rendering a procedural style on first use)."""
    info = get_style(name)
    style_dir = ensure_style_data(info.name, data_root)
    return StyleData(info, data_root, style_dir, list_images(style_dir, info.train_split),
                     list_images(style_dir, info.test_split))


def as_style_data(name: str, where: StyleData | Path) -> StyleData:
    """``where`` when already resolved, else the style ``name`` resolved under the data root ``where``."""
    return where if isinstance(where, StyleData) else resolve_style_data(name, where)


def ensure_style_data(name: str, data_root: Path) -> Path:
    """Return ``<data_root>/<name>``, rendering procedural styles on first use.

    A missing downloaded or imported style is an error that says how to get it.
    """
    info = get_style(name)
    directory = data_root / name
    if (directory / info.train_split).is_dir() and (directory / info.test_split).is_dir():
        return directory
    if info.source == "procedural":
        from nsync_bench.data.procedural import render_procedural_style

        log.info("rendering procedural style %s into %s", name, directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        if info.renderer:  # a plugin's, e.g. the toy world's target styles
            from nsync_bench.config.plugins import load_plugin

            load_plugin("style_renderers", info.renderer, "style renderer")(name, directory)
        else:
            render_procedural_style(name, directory)  # an unknown name is a teaching error there
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
        caption = read_caption(caption_path) if caption_path.is_file() else None
        images.append(StyleImage(path, caption))
    if not images:
        raise DataError(f"no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return images


def caption_problem(raw: bytes, encoding: str = "utf-8") -> tuple[str | None, str | None]:
    """``(caption, None)`` for bytes that decode as ``encoding`` into printable text; else ``(None, why)``.
    A NUL or another control character (tabs and line breaks aside) is never part of a caption."""
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError) as err:
        return None, f"is not valid {encoding} ({err})"
    control = sorted({c for c in text if (ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127})
    if control:
        return None, f"contains the control character(s) {', '.join(repr(c) for c in control)}"
    return text.strip(), None


def read_caption(path: Path) -> str:
    """A caption file's text (UTF-8, printable), or a :class:`DataError` naming the file and the fix."""
    caption, problem = caption_problem(path.read_bytes())
    if problem is not None:
        raise DataError(f"caption {path} {problem}. Save it as UTF-8 text without control characters, or import the "
                        "style again with `nsync-bench data import STYLE PATH --force --caption-encoding ENCODING` "
                        "(e.g. latin-1); `nsync-bench data validate STYLE` lists every such file.")
    return caption or ""


def require_captions(images: list[StyleImage]) -> list[str]:
    missing = [img.path.name for img in images if not img.caption]
    if missing:
        raise DataError(
            f"{len(missing)} image(s) have no caption, e.g. {missing[:3]}; write a .txt beside each image "
            "or run `nsync-bench data captions` (or use --set prompts.mode=templates)."
        )
    return [img.caption or "" for img in images]


@dataclass(frozen=True)
class StyleStatus:
    """What exists on disk for one style, found by listing folders only (``data list`` stays fast)."""

    info: StyleInfo
    directory: Path
    present: bool  # both split folders exist
    images: dict[str, int]
    captions: dict[str, int]
    negative_sets: int  # folders under <data_root>/negatives/<base model>/<style>/


def style_status(name: str, data_root: Path) -> StyleStatus:
    info = get_style(name)
    directory = Path(data_root) / name
    images: dict[str, int] = {}
    captions: dict[str, int] = {}
    for split in info.splits:
        folder = directory / split
        entries = list(folder.iterdir()) if folder.is_dir() else []
        stems = {p.stem for p in entries if p.suffix.lower() in IMAGE_SUFFIXES}
        images[split] = len(stems)
        captions[split] = sum(1 for p in entries if p.suffix == ".txt" and p.stem in stems)
    present = all((directory / split).is_dir() for split in info.splits)
    # Only finished sets (with their negatives.json): a killed render leaves a .tmp-negatives-* folder.
    negative_sets = sum(1 for p in Path(data_root).glob(f"negatives/*/{name}/*/negatives.json") if p.is_file())
    return StyleStatus(info, directory, present, images, captions, negative_sets)


__all__ = ["IMAGE_SUFFIXES", "StyleData", "StyleImage", "StyleInfo", "StyleStatus", "as_style_data", "caption_problem",
           "ensure_style_data", "get_style", "list_images", "read_caption", "require_captions", "resolve_style_data",
           "style_names", "style_status"]
