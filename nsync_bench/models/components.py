"""The bundle of diffusion components every method trains against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class DiffusionComponents:
    """A Stable-Diffusion-style model split into its parts.

    ``noise_scheduler`` is the DDPM scheduler used to noise latents during training (as in
    diffusers' training examples); ``sample_scheduler`` is the scheduler the pipeline samples
    with (the model's own default, e.g. PNDM for SD 1.5). ``source`` names where the weights came
    from (``tiny:seed=0`` or a hub id / local path) and goes into provenance.
    """

    tokenizer: Any
    text_encoder: Any
    vae: Any
    unet: Any
    noise_scheduler: Any
    sample_scheduler: Any
    source: str

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_scaling(self) -> float:
        return float(self.vae.config.scaling_factor)
