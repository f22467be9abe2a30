"""Tiny, seeded Stable-Diffusion components for the offline ``smoke`` profile.

The smoke profile must exercise every code path of a real run (tokenizer, text encoder, VAE,
UNet, both schedulers, the diffusers pipeline) on a CPU in seconds with no downloads. These
modules have SD 1.5's architecture and the real CLIP tokenizer, only much smaller and randomly
initialised from a seed, so the same seed always yields bit-identical weights.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from nsync_bench.errors import ConfigError
from nsync_bench.models.components import DiffusionComponents
from nsync_bench.models.tokenizer import CLIP_VOCAB_SIZE, load_clip_tokenizer

logger = logging.getLogger(__name__)

VAE_BLOCKS = (32, 64)
VAE_SCALE_FACTOR = 2 ** (len(VAE_BLOCKS) - 1)
# Fixed offsets added to the seed so each component draws from its own stream.
_SEED_OFFSET = {"unet": 0, "vae": 1, "text_encoder": 2}

# SD 1.5's scheduler_config.json (PNDM), minus bookkeeping keys.
SD15_SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "skip_prk_steps": True,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "trained_betas": None,
}


def _seeded(seed: int, build: Any) -> Any:
    """Call ``build()`` right after seeding torch, leaving the caller's RNG state untouched."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _unet(resolution: int) -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=resolution // VAE_SCALE_FACTOR,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def _vae(resolution: int) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=VAE_BLOCKS,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=resolution,
    )


def _text_encoder() -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=32,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        hidden_act="quick_gelu",
    )
    return CLIPTextModel(config)


def build_tiny_components(seed: int = 0, resolution: int = 32) -> DiffusionComponents:
    """Build SD-1.5-shaped components small enough to train on a CPU in seconds.

    Each module is initialised right after ``torch.manual_seed(seed + offset)`` inside a forked
    RNG, so construction is deterministic and does not shift any other random stream.
    """
    from diffusers import DDPMScheduler, PNDMScheduler

    if resolution <= 0 or resolution % (VAE_SCALE_FACTOR * 2) != 0:
        raise ConfigError(
            f"tiny model resolution must be a positive multiple of {VAE_SCALE_FACTOR * 2} "
            f"(VAE factor {VAE_SCALE_FACTOR} x UNet downsampling); got {resolution}. Fix: use e.g. 32 or 64."
        )
    unet = _seeded(seed + _SEED_OFFSET["unet"], lambda: _unet(resolution))
    vae = _seeded(seed + _SEED_OFFSET["vae"], lambda: _vae(resolution))
    text_encoder = _seeded(seed + _SEED_OFFSET["text_encoder"], _text_encoder)
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
    sample_scheduler = PNDMScheduler(**SD15_SCHEDULER_CONFIG)
    # diffusers types its lazy top-level exports as its dummy (no-torch) objects, which have no config
    # diffusers types its lazy top-level exports as the no-torch dummy classes, which lack from_config.
    noise_scheduler = DDPMScheduler.from_config(sample_scheduler.config)  # type: ignore[attr-defined]
    components = DiffusionComponents(
        tokenizer=load_clip_tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        unet=unet,
        noise_scheduler=noise_scheduler,
        sample_scheduler=sample_scheduler,
        source=f"tiny:seed={seed},resolution={resolution}",
    )
    logger.debug("built tiny components %s (%d parameters)", components.source, count_parameters(components))
    return components


def count_parameters(components: DiffusionComponents) -> int:
    """Total parameters of the text encoder, VAE and UNet (for logs and reports)."""
    return sum(
        p.numel() for m in (components.text_encoder, components.vae, components.unet) for p in m.parameters()
    )


def save_components(components: DiffusionComponents, directory: Path) -> None:
    """Save ``components`` in the standard diffusers ``StableDiffusionPipeline`` layout (safetensors).

    Tests use this to exercise the real from-disk loading path without a network; the scheduler
    saved is the sampling one, as in a hub snapshot. Tokens added to the tokenizer (textual
    inversion) are kept in ``tokenizer.json`` only.
    """
    from nsync_bench.models.diffusers_pipeline import build_pipeline

    pipeline = build_pipeline(components)
    Path(directory).mkdir(parents=True, exist_ok=True)
    pipeline.save_pretrained(str(directory), safe_serialization=True)
    # transformers 5 saves only tokenizer.json; hub SD snapshots ship vocab.json + merges.txt.
    # Write both so either loader (and older transformers) finds what it expects.
    tokenizer = components.tokenizer
    if hasattr(tokenizer, "backend_tokenizer"):  # a fast tokenizer (transformers 5 has no other kind)
        tokenizer.backend_tokenizer.model.save(str(Path(directory) / "tokenizer"))
    else:  # transformers 4's slow CLIPTokenizer writes the same two files
        tokenizer.save_vocabulary(str(Path(directory) / "tokenizer"))
