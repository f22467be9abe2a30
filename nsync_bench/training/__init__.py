"""The training loop every method shares: batches, latents, the diffusion loss, precision, checkpoints."""
