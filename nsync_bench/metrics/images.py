"""Image sets for metrics: listing, decoding to RGB, and an account of what was converted.

No image is ever dropped silently: a file that cannot be decoded is an error naming it, and
every conversion (RGBA, grayscale, palette, 16-bit ... -> RGB) is counted and reported.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from nsync_bench.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


@dataclass
class ImageSetInfo:
    """What a metric actually used: the count, and how many images of each mode were converted."""

    count: int = 0
    converted: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)

    def note(self) -> str:
        parts = [f"{self.count} images"]
        if self.converted:
            parts.append("converted to RGB: " + ", ".join(f"{n} {mode}" for mode, n in sorted(self.converted.items())))
        if len(self.sizes) > 1:
            parts.append(f"{len(self.sizes)} different sizes")
        return "; ".join(parts)


def list_image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (a deterministic order, as the references do)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"not a folder of images: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


def inventory(files: list[Path]) -> ImageSetInfo:
    """Count images, modes and sizes from the headers (cheap; decoding errors surface at extraction)."""
    info = ImageSetInfo()
    for path in files:
        try:
            with Image.open(path) as image:
                mode, size = image.mode, image.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise DataError(f"cannot read image {path}: {err}. Remove or replace it, or run `nsync-bench data "
                            "validate --quarantine`.") from err
        info.count += 1
        info.sizes[size] += 1
        if mode != "RGB":
            info.converted[mode] += 1
    return info
