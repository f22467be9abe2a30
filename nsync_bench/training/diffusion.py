"""The denoising objective every method trains with (Textual Inversion's loss, Gal et al. 2022):

    L = E_{z0 ~ VAE(x), eps ~ N(0, I), t} || target(z0, eps, t) - eps_theta(z_t, t, c(y)) ||^2

Every random draw (the VAE latent sample, the noise, the timesteps) comes from the ``generator``
the caller passes in, so two methods handed generators of the same stream see the same draws.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nsync_bench.models.components import DiffusionComponents


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
def sample_latents(
    components: DiffusionComponents, pixel_values: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Encode images with the frozen VAE and draw one latent sample, scaled for the UNet."""
    vae = components.vae
    distribution = vae.encode(pixel_values.to(device=vae.device, dtype=vae.dtype)).latent_dist
    eps = torch.randn(distribution.mean.shape, generator=generator, dtype=torch.float32)
    latents = distribution.mean.float() + distribution.std.float() * eps.to(distribution.mean.device)
    return latents * components.latent_scaling


def diffusion_loss(
    components: DiffusionComponents,
    pixel_values: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Mean squared denoising error of one batch (float32), differentiable w.r.t. the trainables.

    ``generator`` lives on the CPU so that draws are identical across devices; the order of draws
    (latent sample, noise, timesteps) is fixed.
    """
    scheduler = components.noise_scheduler
    unet = components.unet
    # 1. Encode the images to latents (frozen VAE), sampling the latent distribution.
    latents = sample_latents(components, pixel_values, generator)
    # 2. Draw the noise and a timestep per image from the same stream.
    noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator)
    noise, timesteps = noise.to(latents.device), timesteps.to(latents.device)
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
    # 5. Predict, conditioned on the prompt, and compare in float32.
    prediction = unet(noisy.to(unet.dtype), timesteps, encoder_hidden_states.to(unet.dtype)).sample
    return F.mse_loss(prediction.float(), target.float(), reduction="mean")
