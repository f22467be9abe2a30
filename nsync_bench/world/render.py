"""The toy world: procedural images whose content and style are independent, named factors.

An image is *content* (shape x colour x position, with jitter) rendered in a *style*, a
combination of four attributes (palette, texture, background, edge). Captions name the content
and, for base-training images, the style's attribute words:

    "a red circle on the left in the style of pastel striped black soft painting"

Held-out target styles never appear in base training: an *in-span* one (an unseen combination of
known attribute values) and a *novel* one (a texture value the base model never saw). A third,
*nuisance* target is a known combination whose training images all share one background, named in
half of its captions like content, so that NSYNC's negatives can carry it (WorldTarget). Rendering
is batched in torch on the CPU at 64 px and area-downsampled to 32 px; every random draw comes
from a seeded generator, so the same seed gives bit-identical images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nsync_bench.errors import unknown_name

RESOLUTION = 32
_CANVAS = 64  # drawn at 2x and area-downsampled: anti-aliased edges

SHAPES = ("circle", "square", "triangle", "ring")
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.12),
    "green": (0.12, 0.70, 0.20),
    "blue": (0.15, 0.30, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.60, 0.20, 0.75),
    "orange": (0.98, 0.52, 0.08),
}
POSITIONS: dict[str, tuple[float, float]] = {  # centre (x, y) as a fraction of the canvas
    "on the left": (0.28, 0.5),
    "on the right": (0.72, 0.5),
    "at the top": (0.5, 0.28),
    "at the bottom": (0.5, 0.72),
    "in the middle": (0.5, 0.5),
}
# Style attributes and their caption words. "hatched" is never used in base training.
PALETTES = ("vivid", "pastel", "muted")
TEXTURES = ("plain", "grainy", "striped", "hatched")
BACKGROUNDS = ("white", "black", "gray")
EDGES = ("sharp", "soft", "inked")
BASE_TEXTURES = ("plain", "grainy", "striped")
_BACKGROUND_RGB = {"white": (0.95, 0.95, 0.93), "black": (0.07, 0.07, 0.09), "gray": (0.50, 0.50, 0.52)}


@dataclass(frozen=True)
class WorldStyle:
    """One combination of attribute values."""

    palette: str
    texture: str
    background: str
    edge: str

    @property
    def words(self) -> tuple[str, str, str, str]:
        return (self.palette, self.texture, self.background, self.edge)

    @property
    def slug(self) -> str:
        return "-".join(self.words)


@dataclass(frozen=True)
class WorldTarget:
    """A target style of the data root (``datasets/<name>.toml``).

    ``kind``: *in-span* (an unseen combination of known values, held out of base training), *novel*
    (a value the base model never saw, held out too) or *nuisance* (a combination base training
    knows, whose training images all share one value of ``nuisance``, an attribute that is not part
    of the style: the test split spreads it over all its values). A nuisance target's captions name
    the nuisance value the way a captioner names content, "a red circle on the left on a white
    background", in the share ``naming_rate`` of the images of each value (a captioner mentions the
    background in some captions, not all), in every split. ``style`` holds the training images'
    values; for a nuisance target its ``nuisance`` attribute is the shared one.
    """

    style: WorldStyle
    kind: str
    display_name: str
    nuisance: str | None = None
    naming_rate: float = 1.0

    @property
    def style_attributes(self) -> tuple[str, ...]:
        """The attributes that make the style: all four, less the nuisance."""
        return tuple(a for a in ATTRIBUTES if a != self.nuisance)


ATTRIBUTES = ("palette", "texture", "background", "edge")
# How a caption names a nuisance value (the only nuisance the base model renders reliably from a
# caption is the background: docs/toy-world.md, "A target built for NSYNC's mechanism").
NUISANCE_PHRASES = {"background": "on a {value} background"}

# The targets. Their display names are words the base model never saw in a caption: an untrained
# model prompted with them gets no style information.
TARGETS: dict[str, WorldTarget] = {
    "world-dusk": WorldTarget(WorldStyle("pastel", "striped", "black", "soft"), "in-span", "dusk poster"),
    "world-etching": WorldTarget(WorldStyle("muted", "hatched", "white", "inked"), "novel", "etching"),
    # Half the captions name the background: with every caption naming it, the caption explains the
    # white background and TI's token does not take it up (measured: docs/toy-world.md).
    "world-linen": WorldTarget(WorldStyle("muted", "striped", "white", "soft"), "nuisance", "linen print",
                               nuisance="background", naming_rate=0.5),
}


def base_styles() -> list[WorldStyle]:
    """Every combination of known values except the in-span target's (81 - 1 = 80 styles)."""
    held_out = {t.style for t in TARGETS.values() if t.kind in ("in-span", "novel")}
    return [
        WorldStyle(p, t, b, e)
        for p in PALETTES
        for t in BASE_TEXTURES
        for b in BACKGROUNDS
        for e in EDGES
        if WorldStyle(p, t, b, e) not in held_out
    ]


def target(name: str) -> WorldTarget:
    if name not in TARGETS:
        raise unknown_name("toy-world target style", name, TARGETS)
    return TARGETS[name]


def target_style(name: str) -> WorldStyle:
    return target(name).style


@dataclass(frozen=True)
class Content:
    shape: str
    colour: str
    position: str

    @property
    def caption(self) -> str:
        return f"a {self.colour} {self.shape} {self.position}"


def nuisance_caption(content: Content, attribute: str, value: str) -> str:
    """The content caption naming a nuisance value: "a red circle on the left on a white background"."""
    return f"{content.caption} {NUISANCE_PHRASES[attribute].format(value=value)}"


def style_phrase(style: WorldStyle, keep: tuple[bool, ...] = (True,) * 4) -> str:
    """ "in the style of pastel striped black soft painting"; dropped attributes leave their word out."""
    words = [w for w, k in zip(style.words, keep, strict=True) if k]
    return "in the style of " + " ".join([*words, "painting"])


def sample_contents(rng: np.random.Generator, n: int) -> list[Content]:
    shapes = rng.integers(len(SHAPES), size=n)
    colours = rng.integers(len(COLOURS), size=n)
    positions = rng.integers(len(POSITIONS), size=n)
    names, places = list(COLOURS), list(POSITIONS)
    return [Content(SHAPES[s], names[c], places[p]) for s, c, p in zip(shapes, colours, positions, strict=True)]


def _shape_masks(contents: list[Content], rng: np.random.Generator) -> torch.Tensor:
    """(N, 1, 64, 64) coverage in {0, 1} of each content's shape, with position and size jitter."""
    n = len(contents)
    centre = np.array([POSITIONS[c.position] for c in contents]) + rng.uniform(-0.05, 0.05, (n, 2))
    radius = rng.uniform(0.15, 0.2, n)
    axis = (torch.arange(_CANVAS, dtype=torch.float32) + 0.5) / _CANVAS
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    cx = torch.tensor(centre[:, 0], dtype=torch.float32)[:, None, None]
    cy = torch.tensor(centre[:, 1], dtype=torch.float32)[:, None, None]
    r = torch.tensor(radius, dtype=torch.float32)[:, None, None]
    dx, dy = xx - cx, yy - cy
    dist = torch.sqrt(dx**2 + dy**2)
    masks = torch.zeros(n, _CANVAS, _CANVAS)
    for shape in SHAPES:
        idx = [i for i, c in enumerate(contents) if c.shape == shape]
        if not idx:
            continue
        sel = torch.tensor(idx)
        if shape == "circle":
            m = dist[sel] <= r[sel]
        elif shape == "square":
            m = torch.maximum(dx[sel].abs(), dy[sel].abs()) <= 0.85 * r[sel]
        elif shape == "ring":
            m = (dist[sel] <= r[sel]) & (dist[sel] >= 0.55 * r[sel])
        else:  # upward triangle inscribed in the circle of radius r
            h = 1.1 * r[sel]
            y_rel = dy[sel] / h  # -1 at the apex, +0.75 at the base
            m = (y_rel <= 0.75) & (y_rel >= -1.0) & (dx[sel].abs() <= (y_rel + 1.0) / 1.75 * 1.0 * h)
        masks[sel] = m.float()
    return masks[:, None]


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    half = int(3 * sigma)
    t = torch.arange(-half, half + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (half, half, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, half, half), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _fill_colour(colour: str, palette: str) -> torch.Tensor:
    rgb = torch.tensor(COLOURS[colour])
    if palette == "pastel":
        return 0.45 * rgb + 0.55 * torch.tensor([0.97, 0.95, 0.97])
    if palette == "muted":  # desaturated and darker
        grey = rgb.mean()
        return 0.75 * (0.45 * rgb + 0.55 * grey)
    return rgb


def render(contents: list[Content], styles: list[WorldStyle], seed: int) -> torch.Tensor:
    """Render images as a (N, 3, 32, 32) float tensor in [0, 1]; deterministic in ``seed``."""
    if len(contents) != len(styles):
        raise ValueError("one style per content")
    n = len(contents)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    masks = _shape_masks(contents, rng)
    soft = torch.tensor([s.edge == "soft" for s in styles])
    if soft.any():
        masks[soft] = _blur(masks[soft], 2.5)
    inked = torch.tensor([s.edge == "inked" for s in styles])
    # Outline: a 3-px band around the shape (dilation minus the shape itself, at 64 px).
    ring = (F.max_pool2d(masks, 7, stride=1, padding=3) - masks).clamp(0, 1) * inked[:, None, None, None]
    fill = torch.stack([_fill_colour(c.colour, s.palette) for c, s in zip(contents, styles, strict=True)])
    bg = torch.stack([torch.tensor(_BACKGROUND_RGB[s.background]) for s in styles])
    # Background textures act on the background only; "hatched" also crosses the shape.
    axis = torch.arange(_CANVAS)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    stripes = ((yy // 4) % 2).float() * 2 - 1  # 8-px period at 64 px: 4 px at 32
    hatch = (((xx + yy) % 10) < 3).float()
    img = bg[:, :, None, None].expand(n, 3, _CANVAS, _CANVAS).clone()
    bg_sign = torch.where(bg.mean(1) > 0.3, -1.0, 1.0)[:, None, None, None]
    for i, s in enumerate(styles):
        if s.texture == "striped":
            img[i] += 0.16 * stripes * (-bg_sign[i, 0, 0, 0])
    img = img * (1 - masks) + fill[:, :, None, None] * masks
    ink = torch.tensor([0.05, 0.04, 0.03])[None, :, None, None]
    img = img * (1 - ring) + ink * ring
    for i, s in enumerate(styles):
        if s.texture == "hatched":
            img[i] = img[i] * (1 - 0.55 * hatch) + 0.1 * 0.55 * hatch
    img = F.avg_pool2d(img, 2)
    grainy = torch.tensor([s.texture == "grainy" for s in styles], dtype=torch.float32)[:, None, None, None]
    noise = torch.randn(img.shape[0], 1, RESOLUTION, RESOLUTION, generator=gen)
    img = img + 0.11 * grainy * noise
    return img.clamp(0, 1)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] -> (N, H, W, 3) uint8 (round half up, as PIL does)."""
    return (images.permute(0, 2, 3, 1).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
