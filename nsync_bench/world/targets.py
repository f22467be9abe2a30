"""The toy world's held-out target styles as ordinary styles in the data root.

``<data_root>/world-dusk/{train,test}/<stem>.{png,txt}``: 32 px renders whose captions name the
content only ("a red circle on the left"): what a style is made of is for a method to learn. The
content of image *i* and its pixels depend only on (style, split, i), so the files are
byte-for-byte reproducible. Written into a temporary sibling and renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from PIL import Image

from nsync_bench import seeding
from nsync_bench.world import render as wr

N_TRAIN = 48
N_TEST = 96


def draw_split(name: str, split: str, count: int, seed: int = 0) -> tuple[list[wr.Content], list[Image.Image]]:
    """``count`` renders of target style ``name`` for ``split`` (its own seeded stream)."""
    style = wr.target_style(name)
    rng = seeding.numpy_rng(seed, "world-style", name, split)
    contents = wr.sample_contents(rng, count)
    pixels = wr.to_uint8(wr.render(contents, [style] * count, seed=int(rng.integers(2**31))))
    return contents, [Image.fromarray(p, "RGB") for p in pixels]


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
            contents, images = draw_split(name, split, count)
            for i, (content, image) in enumerate(zip(contents, images, strict=True)):
                stem = f"{name}_{split}_{i:03d}"
                image.save(tmp / split / f"{stem}.png", format="PNG")
                (tmp / split / f"{stem}.txt").write_text(content.caption + "\n", encoding="utf-8")
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if not (out_dir / "test").is_dir():  # a concurrent writer's identical output is fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
