"""RGB conversion that keeps intensities: high-bit-depth images are scaled, not clipped.

PIL's ``convert("RGB")`` clips 16-bit grayscale ("I;16*") and 32-bit integer ("I") images at
255, so a 16-bit PNG turns almost white. Those modes are scaled to 8 bits first (x / 257 for the
16-bit range, which maps 65535 to 255 exactly); float images ("F") are taken as [0, 1] when they
lie within it, else scaled by their maximum. Every other mode converts as PIL does.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from nsync_bench.errors import DataError

HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB with its intensities preserved (see the module docstring)."""
    if image.mode == "RGB":
        return image
    if image.mode not in HIGH_BIT_MODES:
        return image.convert("RGB")
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = float(values.max()) if values.size else 1.0
        scale = 255.0 if top <= 1.0 else 255.0 / top
    else:  # 16-bit data (also when PIL opened it as 32-bit "I"); larger integers by their maximum
        top = float(values.max()) if values.size else 0.0
        scale = 1.0 / 257.0 if top <= 65535 else 255.0 / top
    gray = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").convert("RGB")


def conversion_note(mode: str) -> str:
    """How :func:`to_rgb` treats ``mode`` (for `data validate`)."""
    if mode in HIGH_BIT_MODES:
        return f"mode {mode} (high bit depth) is scaled to 8 bits and converted to RGB at load"
    return f"mode {mode} is converted to RGB at load"


def open_image(path: Path) -> Image.Image:
    """Decode ``path`` fully into memory (the file is closed after). PIL's decompression-bomb
    *warning* is silenced here: `data validate` names large images; its error still applies."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            image.load()
            return image.copy()


def load_rgb(path: Path) -> Image.Image:
    """``path`` decoded fully as 8-bit RGB with its intensities preserved: the one image loader of training,
    scoring and captioning. A file that does not decode is a :class:`DataError` naming it and the fix."""
    try:
        return to_rgb(open_image(path))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"cannot decode image {path}: {err}. Remove or replace it, or find every such file with "
                        "`nsync-bench data validate STYLE --quarantine`.") from err
