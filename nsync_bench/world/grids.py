"""Pictures and a probe check of what the toy world's base model learned.

:func:`base_samples` prompts the base model with every base-training style (one content each),
saves a grid of real render / sample pairs and reports how often the probe recognises the
prompted attribute values in the samples (chance: 1/3 per style attribute, 1/6 for colour).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nsync_bench.models.components import DiffusionComponents
from nsync_bench.world import render as wr
from nsync_bench.world.probe import CONTENT_HEADS, STYLE_HEADS, WorldProbe

CELL = 32


def sample(components: DiffusionComponents, prompts: list[str], seed: int, steps: int = 30,
           guidance: float = 2.0, batch: int = 40) -> torch.Tensor:
    """(N, 3, 32, 32) samples in [0, 1], image i from its own seeded initial noise."""
    from nsync_bench.models.diffusers_pipeline import build_pipeline

    pipe = build_pipeline(components)
    out = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        latents = torch.cat([torch.randn((1, 3, wr.RESOLUTION, wr.RESOLUTION),
                                         generator=torch.Generator().manual_seed(seed * 100003 + start + k))
                             for k in range(len(chunk))])
        with torch.inference_mode():
            images = pipe(chunk, height=wr.RESOLUTION, width=wr.RESOLUTION, num_inference_steps=steps,
                          guidance_scale=guidance, latents=latents, output_type="pt").images
        out.append(images.float().cpu())
    return torch.cat(out)


def tile(rows: list[list[np.ndarray]], scale: int = 3) -> Image.Image:
    """A grid of (32, 32, 3) uint8 images with 2-px gutters, upscaled ``scale`` x (nearest)."""
    n_cols = max(len(r) for r in rows)
    pitch = CELL + 2
    canvas = np.full((len(rows) * pitch, n_cols * pitch, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            canvas[i * pitch:i * pitch + CELL, j * pitch:j * pitch + CELL] = image
    img = Image.fromarray(canvas, "RGB")
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def base_samples(components: DiffusionComponents, probe: WorldProbe, out: Path, seed: int = 0,
                 per_style: int = 2) -> dict[str, float]:
    """Grid (real | sample pairs, one row of pairs per 4 styles) and probe accuracy per attribute."""
    styles = [s for s in wr.base_styles() for _ in range(per_style)]
    rng = np.random.default_rng(seed)
    contents = wr.sample_contents(rng, len(styles))
    prompts = [f"{c.caption} {wr.style_phrase(s)}" for c, s in zip(contents, styles, strict=True)]
    real = wr.render(contents, styles, seed=seed)
    fake = sample(components, prompts, seed)
    with torch.no_grad():
        predicted = {k: v.argmax(1) for k, v in probe(fake).items()}
    accuracy = {}
    for head, values in {**STYLE_HEADS, **CONTENT_HEADS}.items():
        source = styles if head in STYLE_HEADS else contents
        truth = torch.tensor([values.index(getattr(x, head)) for x in source])
        accuracy[head] = float((predicted[head] == truth).float().mean())
    real_u8, fake_u8 = wr.to_uint8(real), wr.to_uint8(fake)
    pairs = [[real_u8[i], fake_u8[i]] for i in range(0, len(styles), per_style)]
    rows = [[image for pair in pairs[k:k + 8] for image in pair] for k in range(0, len(pairs), 8)]
    out.parent.mkdir(parents=True, exist_ok=True)
    tile(rows).save(out)
    return accuracy
