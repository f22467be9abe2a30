"""The toy world's held-out target styles as ordinary styles in the data root.

``<data_root>/world-dusk/{train,test}/<stem>.{png,txt}``: 32 px renders whose captions name the
content only ("a red circle on the left"): what a style is made of is for a method to learn. A
*nuisance* target (``world-linen``) also names its nuisance in half of the captions ("... on a white
background"): all training images share one value, the test split spreads it over all values. The
files depend only on (style, split, count), so they are byte-for-byte reproducible. Written into
a temporary sibling and renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from nsync_bench import seeding
from nsync_bench.world import render as wr

N_TRAIN = 48
N_TEST = 96
NUISANCE_VALUES = {"background": wr.BACKGROUNDS}


@dataclass(frozen=True)
class Split:
    """``count`` renders of a target: each image's caption and attribute values."""

    captions: list[str]
    styles: list[wr.WorldStyle]
    images: list[Image.Image]


def nuisance_values(name: str, split: str, count: int, rng: np.random.Generator) -> list[str]:
    """The nuisance value of each image: the shared one in ``train``; in every other split each value
    equally often (as far as ``count`` allows), in a seeded order."""
    target = wr.target(name)
    assert target.nuisance is not None
    shared = getattr(target.style, target.nuisance)
    if split == "train":
        return [shared] * count
    values = NUISANCE_VALUES[target.nuisance]
    return [values[int(k) % len(values)] for k in rng.permutation(count)]


def named_images(values: list[str], rate: float, rng: np.random.Generator) -> set[int]:
    """Which images' captions name their nuisance value: ``round(rate * m)`` of the m images of each
    value, chosen at random, so naming is independent of the value."""
    named: set[int] = set()
    for value in dict.fromkeys(values):
        indices = [k for k, v in enumerate(values) if v == value]
        chosen = rng.permutation(len(indices))[: round(rate * len(indices))]
        named.update(indices[int(j)] for j in chosen)
    return named


def draw(name: str, split: str, count: int, seed: int = 0) -> Split:
    """``count`` renders of target style ``name`` for ``split`` (its own seeded stream)."""
    target = wr.target(name)
    rng = seeding.numpy_rng(seed, "world-style", name, split)
    contents = wr.sample_contents(rng, count)
    if target.nuisance is None:
        styles = [target.style] * count
        captions = [c.caption for c in contents]
    else:
        values = nuisance_values(name, split, count, rng)
        named = named_images(values, target.naming_rate, rng)
        styles = [replace(target.style, **{target.nuisance: v}) for v in values]
        captions = [wr.nuisance_caption(c, target.nuisance, v) if k in named else c.caption
                    for k, (c, v) in enumerate(zip(contents, values, strict=True))]
    pixels = wr.to_uint8(wr.render(contents, styles, seed=int(rng.integers(2**31))))
    return Split(captions, styles, [Image.fromarray(p, "RGB") for p in pixels])


def draw_split(name: str, split: str, count: int, seed: int = 0) -> tuple[list[str], list[Image.Image]]:
    """(captions, images) of :func:`draw`."""
    drawn = draw(name, split, count, seed)
    return drawn.captions, drawn.images


def render_world_style(name: str, out_dir: Path, n_train: int = N_TRAIN, n_test: int = N_TEST) -> None:
    """Write the style's train and test splits into ``out_dir`` (which must not exist yet)."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; delete it to regenerate the {name!r} world style.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp.chmod(0o755)
    try:
        for split, count in (("train", n_train), ("test", n_test)):
            (tmp / split).mkdir()
            captions, images = draw_split(name, split, count)
            for i, (caption, image) in enumerate(zip(captions, images, strict=True)):
                stem = f"{name}_{split}_{i:03d}"
                image.save(tmp / split / f"{stem}.png", format="PNG")
                (tmp / split / f"{stem}.txt").write_text(caption + "\n", encoding="utf-8")
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if not (out_dir / "test").is_dir():  # a concurrent writer's identical output is fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
