"""Evaluation images: one per test caption, each from a per-prompt seed derived from the run seed.

Image ``i`` starts from the initial latent drawn from stream ``(eval, i)``, the same for every
method with the same run seed (the shared-seeds contract, docs/architecture.md §3), so methods can be
compared image by image. The manifest records prompt, caption, seed and file for each image; it
is enough to regenerate any image from the adapter (:func:`generate_batch` with its prompts).
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
from nsync_bench.config.run_config import EvalConfig
from nsync_bench.io import atomic_write_text
from nsync_bench.pipeline.finite import NonFiniteSamplesError, nonfinite_rows
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


def generate_batch(pipe: Any, prompts: list[EvalPrompt], config: EvalConfig, resolution: int) -> list[Image.Image]:
    """Images for several prompts in one pipeline call, each from its own prompt's initial latent.

    Batching changes pixels only at floating-point level: image i always starts from the latent of
    its seed. On a GPU the pipeline runs in the frozen modules' half precision with SDPA attention
    (diffusers' default attention processor). A batch with non-finite latents or pixels raises
    :class:`~nsync_bench.pipeline.finite.NonFiniteSamplesError` instead of becoming (black) images.
    """
    latents = torch.cat([initial_latents(pipe, p.seed, resolution) for p in prompts])
    generators = [torch.Generator("cpu").manual_seed(p.seed) for p in prompts]  # for stochastic samplers
    with torch.inference_mode(), _autocast(pipe, config):
        latents = pipe(
            [p.prompt for p in prompts],
            height=resolution,
            width=resolution,
            num_inference_steps=config.num_inference_steps,
            guidance_scale=config.guidance_scale,
            latents=latents.to(pipe.device, pipe.unet.dtype),
            generator=generators,
            output_type="latent",
        ).images
        # The pipeline's own decode, done here so the raw pixels can be checked before PIL clips NaN to black.
        pixels = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False, generator=generators)[0]
        bad = nonfinite_rows(latents, pixels)  # one check per batch (nsync_bench.pipeline.finite)
        if bad:
            raise NonFiniteSamplesError([prompts[i].index for i in bad], len(prompts))
        images = pipe.image_processor.postprocess(pixels, output_type="pil", do_denormalize=[True] * len(prompts))
    size = (config.save_size, config.save_size)
    return [img if img.size == size else img.resize(size, resample=Image.Resampling.BICUBIC) for img in images]


def _autocast(pipe: Any, config: EvalConfig) -> Any:
    """The sampling precision. On CUDA: autocast to the UNet's half precision when the text encoder is
    fp32 (TI's negative set is rendered before training, by the fp32 encoder TI trains), else the
    cross-attention would get fp32 inputs for fp16 weights; evaluation casts the encoder instead. On a
    CPU: bf16 autocast when ``eval.cpu_precision`` asks for it (nsync_bench.models.cpu)."""
    import contextlib

    if pipe.device.type == "cuda" and pipe.text_encoder.dtype != pipe.unet.dtype:
        return torch.autocast("cuda", dtype=pipe.unet.dtype)
    if pipe.device.type == "cpu" and config.cpu_precision == "bf16":
        from nsync_bench.models.cpu import bf16_autocast

        return bf16_autocast()
    return contextlib.nullcontext()


def generate_images(
    pipe: Any,
    prompts: list[EvalPrompt],
    config: EvalConfig,
    resolution: int,
    out_dir: Path,
    progress: Progress | None = None,
) -> list[GeneratedImage]:
    """Generate every prompt's image (``config.batch_size`` per call) and write ``manifest.jsonl``."""
    progress = progress or NullProgress()
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    progress.start("generating", total=len(prompts))
    try:
        for start in range(0, len(prompts), config.batch_size):
            chunk = prompts[start : start + config.batch_size]
            for item, image in zip(chunk, generate_batch(pipe, chunk, config, resolution), strict=True):
                name = f"{item.index:05d}.png"
                image.save(out_dir / name, format="PNG")
                results.append(GeneratedImage(item.index, item.caption, item.prompt, item.seed, item.source, name))
            progress.advance(len(chunk))
    finally:
        progress.stop()
    atomic_write_text(out_dir / MANIFEST, "".join(json.dumps(asdict(row)) + "\n" for row in results))
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
