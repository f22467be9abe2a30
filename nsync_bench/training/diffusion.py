"""The denoising objective every method trains with (Textual Inversion's loss, Gal et al. 2022):

    L = E_{z0 ~ VAE(x), eps ~ N(0, I), t} || target(z0, eps, t) - eps_theta(z_t, t, c(y)) ||^2

Every random draw (the VAE latent sample, the noise, the timesteps) comes from the ``generator``
the caller passes in, so two methods handed generators of the same stream see the same draws.
:func:`draw` makes the draws of one branch; :func:`branch_losses` evaluates several branches in
one UNet pass (NSYNC's fused step) and :func:`diffusion_loss` one branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from nsync_bench.models.components import DiffusionComponents

if TYPE_CHECKING:
    from nsync_bench.training.batches import Batch


def tokenize(components: DiffusionComponents, prompts: list[str], device: torch.device) -> torch.Tensor:
    """Token ids padded to the tokenizer's max length (77 for CLIP), as Stable Diffusion expects."""
    tokenizer = components.tokenizer
    ids = tokenizer(
        prompts, padding="max_length", truncation=True, max_length=tokenizer.model_max_length, return_tensors="pt"
    ).input_ids
    return ids.to(device)


def encode_prompts(components: DiffusionComponents, prompts: list[str], device: torch.device) -> torch.Tensor:
    """Text-encoder hidden states (the UNet's cross-attention context)."""
    return components.text_encoder(tokenize(components, prompts, device))[0]


@torch.no_grad()
def latent_distribution(
    components: DiffusionComponents, pixel_values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the frozen VAE's latent distribution, in float32."""
    vae = components.vae
    distribution = vae.encode(pixel_values.to(device=vae.device, dtype=vae.dtype)).latent_dist
    return distribution.mean.float(), distribution.std.float()


@dataclass
class Draws:
    """One branch's random draws, ready for the UNet."""

    latents: torch.Tensor
    noise: torch.Tensor
    timesteps: torch.Tensor


@torch.no_grad()
def draw(components: DiffusionComponents, batch: Batch, generator: torch.Generator) -> Draws:
    """Latent sample, noise and timesteps of a batch, drawn in this fixed order from ``generator``.

    The generator lives on the CPU so that draws are identical across devices. The latent
    distribution comes from the batch's cached parameters when present (nsync_bench.training.latents:
    the same distribution, and the same sample for the same draw) or from encoding its pixels.
    """
    if batch.latent_mean is not None:
        assert batch.latent_std is not None  # make_batch sets both from the latent cache
        mean, std = batch.latent_mean, batch.latent_std
    else:
        assert batch.pixel_values is not None  # make_batch: pixels whenever there is no latent cache
        mean, std = latent_distribution(components, batch.pixel_values)
    # 1. Sample the latent distribution (z0 = mean + std * eps), scaled for the UNet.
    eps = torch.randn(mean.shape, generator=generator, dtype=torch.float32).to(mean.device)
    latents = (mean + std * eps) * components.latent_scaling
    # 2. Draw the noise and a timestep per image from the same stream.
    noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32)
    steps = components.noise_scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (latents.shape[0],), generator=generator)
    return Draws(latents, noise.to(latents.device), timesteps.to(latents.device))


def branch_losses(
    components: DiffusionComponents, draws: list[Draws], encoder_hidden_states: torch.Tensor
) -> list[torch.Tensor]:
    """The mean squared denoising error of each branch, from one UNet pass over all of them.

    ``encoder_hidden_states`` holds the branches' prompts in the same order as ``draws``. Every
    operation in the UNet acts on each sample separately, so each branch's loss (and its gradient)
    is what a separate pass would give, up to floating-point summation order.
    """
    scheduler = components.noise_scheduler
    unet = components.unet
    latents = torch.cat([d.latents for d in draws])
    noise = torch.cat([d.noise for d in draws])
    timesteps = torch.cat([d.timesteps for d in draws])
    # 3. Forward diffusion: z_t = sqrt(abar_t) z_0 + sqrt(1 - abar_t) eps.
    noisy = scheduler.add_noise(latents, noise, timesteps)
    # 4. The regression target depends on what the UNet was trained to predict.
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        raise ValueError(f"unsupported prediction_type {prediction_type!r} (epsilon or v_prediction)")
    # 5. Predict, conditioned on the prompts, and compare each branch in float32.
    prediction = unet(noisy.to(unet.dtype), timesteps, encoder_hidden_states.to(unet.dtype)).sample
    losses, start = [], 0
    for branch in draws:
        stop = start + branch.latents.shape[0]
        losses.append(F.mse_loss(prediction[start:stop].float(), target[start:stop].float(), reduction="mean"))
        start = stop
    return losses


def diffusion_loss(components: DiffusionComponents, batch: Batch, encoder_hidden_states: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
    """The loss of one batch (float32), differentiable w.r.t. the trainables."""
    return branch_losses(components, [draw(components, batch, generator)], encoder_hidden_states)[0]
