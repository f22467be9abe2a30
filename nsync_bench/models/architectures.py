"""SD 1.5 and SD 2-base at full size with random weights, saved once in the hub's diffusers layout.

No real weights can be downloaded in CI, yet a user's first real run must not be the first time
the code meets an 860M-parameter UNet, a 77-token text encoder (OpenAI CLIP ViT-L/14 for SD 1.5,
OpenCLIP ViT-H/14 for SD 2), attention in every block or half precision. These are the component
configs the hub snapshots declare, as data; :func:`random_snapshot` builds them with random
weights and saves them in the layout ``load_pretrained_components`` reads (fp16 safetensors, as
the hub's ``fp16`` variant, ~2 GB for SD 1.5), cached under ``<cache>/random-arch/<name>-<hash>``.

Sources checked (Nov 2026): the hub files ``unet/config.json``, ``vae/config.json``,
``text_encoder/config.json``, ``scheduler/scheduler_config.json`` and ``tokenizer/`` of
``stable-diffusion-v1-5/stable-diffusion-v1-5`` and ``stabilityai/stable-diffusion-2-base``, as
vendored in huggingface/candle (``candle-transformers/src/models/stable_diffusion/{clip,mod}.rs``:
``Config::v1_5`` / ``Config::v2_1`` text encoders, SD 2 pads with "!"; UNet head dims 8 vs
(5, 10, 20, 20) with linear projections) and diffusers' conversion script defaults. The
``attention_head_dim`` of these configs is really the number of heads (a known diffusers
naming quirk); kept as the hub declares it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nsync_bench.errors import ConfigError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the saved layout changes: old caches then miss

_DOWN = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
_UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]

_UNET_COMMON: dict[str, Any] = {
    "act_fn": "silu", "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False,
    "down_block_types": _DOWN, "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0,
    "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-5,
    "norm_num_groups": 32, "out_channels": 4, "sample_size": 64, "up_block_types": _UP,
}

_VAE: dict[str, Any] = {
    "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
    "sample_size": 512, "scaling_factor": 0.18215,
}

_SCHEDULER: dict[str, Any] = {
    "_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "clip_sample": False, "trained_betas": None,
}

_TEXT_COMMON: dict[str, Any] = {
    "vocab_size": 49408, "max_position_embeddings": 77, "layer_norm_eps": 1e-5, "attention_dropout": 0.0,
    "dropout": 0.0, "initializer_factor": 1.0, "initializer_range": 0.02,
    # The hub configs keep CLIP's original ids; the tokenizer's own ids are what prompts use.
    "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
}

ARCHITECTURES: dict[str, dict[str, Any]] = {
    "sd15": {
        "hub_id": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "unet": {**_UNET_COMMON, "attention_head_dim": 8, "cross_attention_dim": 768},
        "vae": _VAE,
        "text_encoder": {**_TEXT_COMMON, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                         "num_attention_heads": 12, "projection_dim": 768, "hidden_act": "quick_gelu"},
        "scheduler": _SCHEDULER,
        "pad_token": "<|endoftext|>",
    },
    "sd2": {
        "hub_id": "stabilityai/stable-diffusion-2-base",
        "unet": {**_UNET_COMMON, "attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024,
                 "use_linear_projection": True, "upcast_attention": False, "dual_cross_attention": False},
        "vae": _VAE,
        # OpenCLIP ViT-H/14's text tower without its last layer (SD 2 uses the penultimate one).
        "text_encoder": {**_TEXT_COMMON, "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 23,
                         "num_attention_heads": 16, "projection_dim": 512, "hidden_act": "gelu"},
        "scheduler": {**_SCHEDULER, "prediction_type": "epsilon"},
        "pad_token": "!",
    },
}


def architecture(name: str) -> dict[str, Any]:
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {name!r}; choose one of: {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[name]


def config_hash(name: str) -> str:
    payload = json.dumps({"v": FORMAT_VERSION, "arch": architecture(name)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def build_random_components(name: str, seed: int = 0) -> Any:
    """The full-size components with random weights (fp32, frozen), as :class:`DiffusionComponents`."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from nsync_bench.models.components import DiffusionComponents
    from nsync_bench.models.tokenizer import load_clip_tokenizer

    arch = architecture(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel.from_config(arch["unet"])
        vae = AutoencoderKL.from_config(arch["vae"])
        text_encoder = CLIPTextModel(CLIPTextConfig(**arch["text_encoder"]))
    tokenizer = load_clip_tokenizer()
    if arch["pad_token"] != tokenizer.pad_token:
        tokenizer.pad_token = arch["pad_token"]
    # from_config, as the loader does: the hub file carries DDPM keys (clip_sample) PNDM ignores.
    sample_scheduler = PNDMScheduler.from_config(arch["scheduler"])
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
    return DiffusionComponents(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, unet=unet,
                               noise_scheduler=DDPMScheduler.from_config(sample_scheduler.config),
                               sample_scheduler=sample_scheduler, source=f"random:{name}")


def random_snapshot(name: str, cache_root: Path | None = None, seed: int = 0) -> Path:
    """A diffusers snapshot of ``name`` with random weights, built and saved on first use (minutes).

    Saved in fp16 (the loaders cast to the run's dtypes), into a temporary sibling renamed into
    place, so a crash never leaves a half-written snapshot that looks complete.
    """
    import torch

    from nsync_bench import paths
    from nsync_bench.models.tiny import save_components

    root = Path(cache_root) if cache_root is not None else paths.cache_dir() / "random-arch"
    target = root / f"{name}-seed{seed}-{config_hash(name)}"
    if (target / "model_index.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    log.info("building %s at full size with random weights into %s (once)", name, target)
    components = build_random_components(name, seed)
    for module in (components.unet, components.vae, components.text_encoder):
        module.to(torch.float16)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        save_components(components, tmp)
        (tmp / "ARCHITECTURE.json").write_text(json.dumps({"name": name, "seed": seed, "weights": "random",
                                                           "arch": architecture(name)}, indent=2))
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same snapshot first; theirs is identical
            if not (target / "model_index.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
