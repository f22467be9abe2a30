"""The smoke profile's two procedural styles (``toy-pastel``, ``toy-ink``), generated in code so that it needs
no download. (The toy *world* — a trained base model and its target styles — is ``nsync_bench.world``.)

Content and style are kept apart on purpose: a scene (objects, layout, caption) is drawn from an
RNG that depends only on ``(seed, split, index)``, so image *i* of ``toy-pastel`` and image *i* of
``toy-ink`` show the same layout under the same caption and differ only in style — which is exactly
what a style-personalization method should learn. Everything is byte-for-byte deterministic: only
seeded numpy RNGs and PIL drawing are used, and PNGs are saved without metadata.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from nsync_bench.errors import ConfigError, unknown_name

__all__ = ["PROCEDURAL_STYLES", "render_procedural_style"]

log = logging.getLogger(__name__)

PROCEDURAL_STYLES: tuple[str, ...] = ("toy-pastel", "toy-ink")

_SPLITS: tuple[str, ...] = ("train", "test")
_SHAPES = ("circle", "square", "triangle", "star")
_GROUND = ("house", "tree")
_KINDS = (*_SHAPES, "sun", *_GROUND)
_SIZE_WORDS = ("small", "", "large")
_HALF_EXTENT = (0.085, 0.12, 0.155)  # per size class, as a fraction of the canvas
_COL_X = (0.2, 0.5, 0.8)
_COUNT_WORDS = {2: "two", 3: "three"}
_MAX_TRIES = 64  # redraws to find a caption not used yet; the caption space is far larger


@dataclass(frozen=True)
class _Stroke:
    """One polygon (``closed``: filled shape) or polyline, in canvas-relative coordinates (0..1)."""

    points: np.ndarray
    closed: bool
    role: str


@dataclass(frozen=True)
class _Scene:
    caption: str
    strokes: tuple[_Stroke, ...]


# ---------------------------------------------------------------------------------------- content
def _ngon(cx: float, cy: float, r: float, n: int = 40, rot: float = 0.0) -> np.ndarray:
    a = rot + np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def _object_strokes(kind: str, cx: float, cy: float, s: float, rng: np.random.Generator) -> list[_Stroke]:
    """Strokes of one object; ``cy`` is the centre for sky/shapes and the base line for ground objects."""
    rot = float(rng.uniform(-0.2, 0.2))
    if kind == "circle":
        return [_Stroke(_ngon(cx, cy, s), True, "shape")]
    if kind == "square":
        return [_Stroke(_ngon(cx, cy, s * 1.25, 4, np.pi / 4 + rot), True, "shape")]
    if kind == "triangle":
        return [_Stroke(_ngon(cx, cy + 0.25 * s, s * 1.25, 3, -np.pi / 2 + rot), True, "shape")]
    if kind == "star":
        r = np.where(np.arange(10) % 2 == 0, s * 1.15, s * 0.5)[:, None]
        a = -np.pi / 2 + rot + np.arange(10) * np.pi / 5
        return [_Stroke(np.array([cx, cy]) + r * np.stack([np.cos(a), np.sin(a)], 1), True, "shape")]
    if kind == "sun":
        ends = np.array([0.8, 1.15])[:, None] * s
        rays = [
            _Stroke(np.array([cx, cy]) + ends * [np.cos(a), np.sin(a)], False, "ray")
            for a in rot + np.arange(8) * np.pi / 4
        ]
        return [*rays, _Stroke(_ngon(cx, cy, 0.62 * s), True, "sun")]
    if kind == "house":
        w, h = 0.75 * s, 1.1 * s
        return [
            _Stroke(_rect(cx - w, cy - h, cx + w, cy), True, "wall"),
            _Stroke(
                np.array([[cx - 0.9 * s, cy - h], [cx + 0.9 * s, cy - h], [cx, cy - 2 * s]]), True, "roof"
            ),
            _Stroke(_rect(cx - 0.22 * s, cy - 0.55 * s, cx + 0.22 * s, cy), True, "door"),
        ]
    # tree: trunk, then a round crown on top
    return [
        _Stroke(_rect(cx - 0.15 * s, cy - 1.1 * s, cx + 0.15 * s, cy), True, "trunk"),
        _Stroke(_ngon(cx, cy - 1.3 * s, 0.72 * s), True, "crown"),
    ]


def _position(kind: str, row: str, col: int) -> str:
    side = ("left", "", "right")[col]
    if kind in _GROUND:
        return ("on the left", "in the middle", "on the right")[col]
    if kind == "sun" and side:
        return f"in the top {side} corner"
    return f"at the {row} {side}".rstrip()


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _caption(objects: list[tuple[str, int, int, str]], background: str) -> str:
    """Plain-English caption; same-kind same-size objects are counted ("two small circles")."""
    groups: dict[tuple[str, int], list[tuple[int, str]]] = {}
    for kind, size, col, row in objects:
        groups.setdefault((kind, size), []).append((col, row))
    pieces: list[tuple[str, str, int | None]] = []  # noun phrase, position, column if a lone ground object
    for (kind, size), where in groups.items():
        adj = f"{_SIZE_WORDS[size]} " if _SIZE_WORDS[size] else ""
        if len(where) > 1:
            pieces.append((f"{_COUNT_WORDS[len(where)]} {adj}{kind}s", "", None))
        else:
            col, row = where[0]
            pieces.append((f"a {adj}{kind}", _position(kind, row, col), col if kind in _GROUND else None))
    parts: list[str] = []
    i = 0
    while i < len(pieces):
        noun, pos, ground_col = pieces[i]
        nxt = pieces[i + 1] if i + 1 < len(pieces) else None
        if ground_col is not None and nxt is not None and nxt[2] is not None and abs(nxt[2] - ground_col) == 1:
            parts.append(f"{noun} {pos} next to {nxt[0]}")  # "a house on the left next to a tree"
            i += 2
            continue
        parts.append(f"{noun} {pos}".rstrip())
        i += 1
    text = _join(parts)
    if background == "hills":  # "on a hill" only where it cannot attach to a floating shape
        return text + (" on a hill" if all(o[0] in _GROUND for o in objects) else ", over rolling hills")
    return text + (", above wavy lines" if background == "waves" else "")


def _sample_scene(rng: np.random.Generator) -> _Scene:
    background = str(rng.choice(["none", "hills", "waves"], p=[0.4, 0.35, 0.25]))
    freq, phase = rng.uniform(0.7, 1.6), rng.uniform(0, 2 * np.pi)

    def ground_y(x: float | np.ndarray) -> float | np.ndarray:
        if background == "hills":
            return 0.77 + 0.045 * np.sin(2 * np.pi * freq * x + phase)
        return 0.84

    strokes: list[_Stroke] = []
    if background == "hills":
        xs = np.linspace(-0.02, 1.02, 48)
        top = np.stack([xs, ground_y(xs)], axis=1)
        strokes.append(_Stroke(np.vstack([top, [[1.02, 1.02], [-0.02, 1.02]]]), True, "hill"))
    elif background == "waves":
        xs = np.linspace(-0.02, 1.02, 48)
        for k, y in enumerate((0.87, 0.92, 0.97)):
            ys = y + 0.015 * np.sin(2 * np.pi * (freq + 2) * xs + phase + k)
            strokes.append(_Stroke(np.stack([xs, ys], axis=1), False, "wave"))

    n = int(rng.integers(1, 4))
    cols = sorted(int(c) for c in rng.choice(3, size=n, replace=False))
    objects: list[tuple[str, int, int, str]] = []
    for col in cols:
        kinds = [k for k in _KINDS if not (k == "sun" and any(o[0] == "sun" for o in objects))]
        kind, size = str(rng.choice(kinds)), int(rng.integers(3))
        s = _HALF_EXTENT[size]
        cx = _COL_X[col] + float(rng.uniform(-0.04, 0.04))
        if kind in _GROUND:
            row, cy = "bottom", float(ground_y(cx)) + 0.015
        else:
            row = "top" if kind == "sun" else str(rng.choice(["top", "bottom"]))
            cy = (0.27 if row == "top" else 0.62) + float(rng.uniform(-0.03, 0.03))
        objects.append((kind, size, col, row))
        strokes.extend(_object_strokes(kind, cx, cy, s, rng))
    return _Scene(_caption(objects, background), tuple(strokes))


def _draw_scene(rng: np.random.Generator, used: set[str]) -> _Scene:
    """Sample a scene whose caption is not in ``used`` (if feasible) and record its caption."""
    scene = _sample_scene(rng)
    for _ in range(_MAX_TRIES):
        if scene.caption not in used:
            break
        scene = _sample_scene(rng)
    used.add(scene.caption)
    return scene


# ---------------------------------------------------------------------------------------- styles
_PASTELS = np.array(
    [(248, 196, 214), (188, 234, 212), (212, 200, 242), (252, 212, 186), (248, 236, 180), (192, 218, 246)],
    dtype=np.float64,
)
_PASTEL_ROLE = {
    "wall": (252, 222, 196),
    "roof": (240, 176, 196),
    "door": (200, 178, 226),
    "trunk": (222, 188, 168),
    "crown": (166, 222, 190),
    "sun": (250, 226, 150),
    "ray": (250, 214, 150),
    "hill": (200, 234, 204),
    "wave": (176, 204, 240),
}
_PASTEL_SKY = ((236, 228, 250), (228, 240, 252), (250, 232, 240))
_PASTEL_GROUND = ((252, 240, 226), (236, 250, 240), (244, 236, 250))
_INKS = ((22, 22, 28), (24, 34, 88))
_PAPER = (242, 234, 212)


def _render_pastel(scene: _Scene, w: int, rng: np.random.Generator) -> np.ndarray:
    """Soft pastel: vertical gradient, low-contrast blurred fills, fine coloured noise."""
    top = np.array(_PASTEL_SKY[int(rng.integers(3))], dtype=np.float64)
    bottom = np.array(_PASTEL_GROUND[int(rng.integers(3))], dtype=np.float64)
    t = np.linspace(0.0, 1.0, w)[:, None, None]
    img = np.broadcast_to(top * (1 - t) + bottom * t, (w, w, 3)).copy()
    blur = ImageFilter.GaussianBlur(radius=w / 110)
    for stroke in scene.strokes:
        color = _PASTEL_ROLE.get(stroke.role)
        rgb = _PASTELS[int(rng.integers(len(_PASTELS)))] if color is None else np.array(color, float)
        mask = Image.new("L", (w, w), 0)
        pts = [tuple(p) for p in (stroke.points * w).tolist()]
        if stroke.closed:
            ImageDraw.Draw(mask).polygon(pts, fill=255)
        else:
            ImageDraw.Draw(mask).line(pts, fill=255, width=max(2, w // 40), joint="curve")
        alpha = np.asarray(mask.filter(blur), dtype=np.float64)[..., None] * (0.92 / 255.0)
        img = img * (1 - alpha) + rgb * alpha
    img += rng.normal(0.0, 2.5, (w, w, 3)) + rng.normal(0.0, 2.0, (w, w, 1))
    return img


def _wobble(rng: np.random.Generator, shape: tuple[int, ...], scale: float, closed: bool) -> np.ndarray:
    """Hand-drawn jitter: random offsets smoothed along the stroke, so lines wobble but don't zigzag."""
    noise = rng.normal(0.0, scale, shape)
    if shape[0] < 8:  # polygons with few corners: smoothing would only shrink the jitter
        return noise * 0.5
    for _ in range(3):
        if closed:
            noise = (np.roll(noise, 1, axis=0) + 2 * noise + np.roll(noise, -1, axis=0)) / 4
        else:
            noise[1:-1] = (noise[:-2] + 2 * noise[1:-1] + noise[2:]) / 4
    return noise


def _render_ink(scene: _Scene, w: int, rng: np.random.Generator) -> np.ndarray:
    """Ink on paper: grainy cream paper, hatched fills, jittered dark outlines, high contrast."""
    grain = rng.normal(0.0, 7.0, (w, w, 1)) + rng.normal(0.0, 2.0, (w, w, 3))
    paper = np.clip(np.array(_PAPER, dtype=np.float64) + grain, 0, 255).astype(np.uint8)
    paper_img = Image.fromarray(paper, "RGB")
    canvas = paper_img.copy()
    draw = ImageDraw.Draw(canvas)
    ink = _INKS[int(rng.integers(len(_INKS)))]
    line_w = max(1, round(w / 60))
    yy, xx = np.mgrid[0:w, 0:w]
    for k, stroke in enumerate(scene.strokes):
        pts_arr = stroke.points * w + _wobble(rng, stroke.points.shape, w / 120, stroke.closed)
        pts = [tuple(p) for p in pts_arr.tolist()]
        if not stroke.closed:
            draw.line(pts, fill=ink, width=line_w, joint="curve")
            continue
        mask = Image.new("L", (w, w), 0)
        ImageDraw.Draw(mask).polygon(pts, fill=255)
        canvas.paste(paper_img, mask=mask)  # knock out whatever lies behind this shape
        spacing = max(3, round(w / (14 if stroke.role == "hill" else 22)))
        diag = (xx + yy) if (k + int(rng.integers(2))) % 2 else (xx - yy)
        hatch = (diag % spacing) < line_w
        if stroke.role not in ("sun", "door"):  # leave a few shapes white for contrast
            hatch_mask = Image.fromarray((hatch & (np.asarray(mask) > 0)).astype(np.uint8) * 255, "L")
            canvas.paste(ink, mask=hatch_mask)
        draw.line([*pts, pts[0]], fill=ink, width=line_w + 1, joint="curve")
    return np.asarray(canvas, dtype=np.float64)


_RENDERERS = {"toy-pastel": _render_pastel, "toy-ink": _render_ink}


# ------------------------------------------------------------------------------------------ API
def render_procedural_style(
    style: str, out_dir: Path, *, n_train: int = 24, n_test: int = 8, size: int = 64, seed: int = 0
) -> list[Path]:
    """Write ``out_dir/{train,test}/<style>_<split>_<NNN>.{png,txt}`` and return the image paths.

    The content of image *i* depends only on ``(seed, split, i)``, so both styles share layouts and
    captions. Test captions are drawn to differ from train captions (no prompt leakage), hence the
    test split also depends on ``n_train``. Images are rendered at twice ``size`` and downsampled.

    The directory is written atomically (rendered next to ``out_dir``, then renamed), so a complete
    ``out_dir`` never needs re-checking: callers should call this only when ``out_dir`` is missing.
    An existing ``out_dir`` raises :class:`FileExistsError`; if another process creates it while
    this call renders, the finished files it holds are accepted (same arguments, same bytes).
    """
    if style not in _RENDERERS:
        raise unknown_name("style", style, PROCEDURAL_STYLES)
    if n_train < 0 or n_test < 0 or size < 8:
        got = f"n_train={n_train}, n_test={n_test}, size={size}"
        raise ConfigError(f"toy styles need n_train >= 0, n_test >= 0 and size >= 8; got {got}.")
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; delete it to regenerate the {style!r} toy style.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    style_salt = 1 + PROCEDURAL_STYLES.index(style)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; the renamed dataset should be readable like any other
    written: list[Path] = []
    try:
        used: set[str] = set()
        for split_index, (split, count) in enumerate(zip(_SPLITS, (n_train, n_test), strict=True)):
            (tmp / split).mkdir()
            for i in range(count):
                scene = _draw_scene(np.random.default_rng([seed, split_index, i]), used)
                style_rng = np.random.default_rng([seed, split_index, i, style_salt])
                pixels = _RENDERERS[style](scene, 2 * size, style_rng)
                image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
                image = image.resize((size, size), Image.Resampling.LANCZOS)
                stem = f"{style}_{split}_{i:03d}"
                image.save(tmp / split / f"{stem}.png", format="PNG")
                (tmp / split / f"{stem}.txt").write_text(scene.caption + "\n", encoding="utf-8")
                written.append(out_dir / split / f"{stem}.png")
        try:
            os.replace(tmp, out_dir)
        except OSError:
            # A concurrent call with the same arguments won the race; its output is identical.
            if not all(p.is_file() and p.with_suffix(".txt").is_file() for p in written):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("rendered toy style %s: %d train + %d test images in %s", style, n_train, n_test, out_dir)
    return written
