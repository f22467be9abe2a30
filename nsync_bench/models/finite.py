"""Finite or failed: a sampled batch with a NaN or an infinity in its latents or decoded pixels is an
error, never an image.

A diverged sampler (an extreme ``guidance_scale``, a half-precision VAE that overflows on a GPU)
yields NaN latents; PIL's conversion turns them into pure black images that score like ordinary
ones. Every sampling path — evaluation, the learning curve's evaluations and NSYNC's negative set —
goes through :func:`nsync_bench.pipeline.generation.generate_batch`, which checks each batch once
with :func:`nonfinite_rows` (one device-to-host transfer per batch, none per image) before any
image is made. The caller names where it happened (:meth:`NonFiniteSamplesError.at`).
"""

from __future__ import annotations

import torch

from nsync_bench.errors import NsyncBenchError


class NonFiniteSamplesError(NsyncBenchError):
    """Sampling produced non-finite latents or pixels: the run fails (or nothing is cached)."""

    exit_code = 1  # a failed run, not a usage error

    def __init__(self, indices: list[int], batch: int, where: str = "sampling",
                 consequence: str = "Nothing was saved from this batch.") -> None:
        self.indices, self.batch, self.where, self.consequence = list(indices), batch, where, consequence
        shown = ", ".join(map(str, self.indices[:8])) + (", ..." if len(self.indices) > 8 else "")
        super().__init__(
            f"{where}: {len(self.indices)} of the {batch} images of a batch came out non-finite (NaN or infinite "
            f"latents or pixels; image(s) {shown}). The sampler diverged: check eval.guidance_scale / "
            "negatives.guidance_scale (values of a few units are usual), or run the VAE in full precision "
            f"(--set model.mixed_precision=no). {consequence}")

    def at(self, where: str, consequence: str) -> NonFiniteSamplesError:
        """The same error, saying where it happened and what that means for the run."""
        return NonFiniteSamplesError(self.indices, self.batch, where, consequence)


def nonfinite_rows(*tensors: torch.Tensor) -> list[int]:
    """The batch rows (dim 0) holding a NaN or infinity in any of ``tensors`` (all with the same rows).

    One fused reduction per tensor on its device and a single host synchronisation for the batch;
    the rows are listed only when something is wrong.
    """
    flags = torch.stack([~torch.isfinite(t.detach()).flatten(1).all(dim=1) for t in tensors]).any(dim=0)
    if not bool(flags.any()):
        return []
    return [int(i) for i in flags.nonzero().flatten().tolist()]


__all__ = ["NonFiniteSamplesError", "nonfinite_rows"]
