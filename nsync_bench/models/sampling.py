"""Sampling images from a diffusers pipeline, each from its own prompt's seed, checked finite.

Below ``data/`` (which renders NSYNC's negative sets with it) and ``pipeline/`` (evaluation images) in
the layers (docs/architecture.md). Image ``i`` starts from the initial latent of its seed, drawn on the
CPU, so batching and the device change pixels only at floating-point level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from nsync_bench.config.run_config import EvalConfig
from nsync_bench.models.finite import NonFiniteSamplesError, nonfinite_rows


@dataclass(frozen=True)
class EvalPrompt:
    index: int
    caption: str
    prompt: str
    seed: int
    source: str  # the test image whose caption this is



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
    :class:`~nsync_bench.models.finite.NonFiniteSamplesError` instead of becoming (black) images.
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
        bad = nonfinite_rows(latents, pixels)  # one check per batch (nsync_bench.models.finite)
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
