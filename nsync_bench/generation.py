"""Evaluation images: one per test caption, each from a per-prompt seed derived from the run seed.

Image ``i`` starts from the initial latent drawn from stream ``(eval, i)``, the same for every
method with the same run seed (DESIGN.md's common-random-numbers contract), so methods can be
compared image by image. The manifest records prompt, caption, seed and file for each image; it
is enough to regenerate any image from the adapter (see :func:`generate_one`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from nsync_bench import seeding
from nsync_bench.config import EvalConfig
from nsync_bench.progress import NullProgress, Progress

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class EvalPrompt:
    index: int
    caption: str
    prompt: str
    seed: int
    source: str  # the test image whose caption this is


@dataclass(frozen=True)
class GeneratedImage:
    index: int
    caption: str
    prompt: str
    seed: int
    source: str
    file: str


def evaluation_prompts(run_seed: int, captions: list[str], sources: list[str], prompt_of: Any,
                       max_prompts: int | None = None) -> list[EvalPrompt]:
    """The evaluation prompts of a run: test captions in file order, seeds from stream ``eval``."""
    count = len(captions) if max_prompts is None else min(max_prompts, len(captions))
    return [
        EvalPrompt(i, captions[i], prompt_of(captions[i]), seeding.derive_seed(run_seed, seeding.EVAL, i), sources[i])
        for i in range(count)
    ]


def initial_latents(pipe: Any, seed: int, resolution: int) -> torch.Tensor:
    """The starting noise of one image, drawn on the CPU so it is the same on every device."""
    channels = pipe.unet.config.in_channels
    size = resolution // pipe.vae_scale_factor
    generator = torch.Generator("cpu").manual_seed(seed)
    return torch.randn((1, channels, size, size), generator=generator, dtype=torch.float32)


@torch.no_grad()
def generate_one(pipe: Any, prompt: str, seed: int, config: EvalConfig, resolution: int) -> Image.Image:
    """One evaluation image at ``config.save_size`` (the released code saves at 256 px)."""
    latents = initial_latents(pipe, seed, resolution).to(pipe.device, pipe.unet.dtype)
    generator = torch.Generator("cpu").manual_seed(seed)  # for schedulers that add noise per step
    image = pipe(
        prompt,
        height=resolution,
        width=resolution,
        num_inference_steps=config.num_inference_steps,
        guidance_scale=config.guidance_scale,
        latents=latents,
        generator=generator,
        output_type="pil",
    ).images[0]
    if image.size != (config.save_size, config.save_size):
        image = image.resize((config.save_size, config.save_size), resample=Image.Resampling.BICUBIC)
    return image


def generate_images(
    pipe: Any,
    prompts: list[EvalPrompt],
    config: EvalConfig,
    resolution: int,
    out_dir: Path,
    progress: Progress | None = None,
) -> list[GeneratedImage]:
    """Generate every prompt's image into ``out_dir`` and write ``out_dir/manifest.jsonl``."""
    progress = progress or NullProgress()
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    progress.start("generating", total=len(prompts))
    try:
        for item in prompts:
            image = generate_one(pipe, item.prompt, item.seed, config, resolution)
            name = f"{item.index:05d}.png"
            image.save(out_dir / name, format="PNG")
            results.append(GeneratedImage(item.index, item.caption, item.prompt, item.seed, item.source, name))
            progress.advance(1)
    finally:
        progress.stop()
    with (out_dir / MANIFEST).open("w", encoding="utf-8") as handle:
        for row in results:
            handle.write(json.dumps(asdict(row)) + "\n")
    return results


def read_manifest(out_dir: Path) -> list[GeneratedImage]:
    with (out_dir / MANIFEST).open(encoding="utf-8") as handle:
        return [GeneratedImage(**json.loads(line)) for line in handle if line.strip()]


def image_grid(paths: list[Path], columns: int = 4, cell: int = 128) -> Image.Image:
    """A simple contact sheet of the first images (the MLflow sample-grid artifact)."""
    rows = max(1, -(-len(paths) // columns))
    grid = Image.new("RGB", (columns * cell, rows * cell), "white")
    for k, path in enumerate(paths):
        with Image.open(path) as image:
            tile = image.convert("RGB").resize((cell, cell), resample=Image.Resampling.BICUBIC)
        grid.paste(tile, ((k % columns) * cell, (k // columns) * cell))
    return grid
