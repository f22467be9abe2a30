"""Named RNG streams derived from (run seed, stream name, step).

Every random draw in a run comes from a generator seeded by :func:`derive_seed`, never from a
generator whose state carries over between steps. Two consequences, both contracts of docs/architecture.md §3:

* **Common random numbers.** For the same seed, every method draws the same positive batch,
  flips, VAE latent sample, noise and timesteps at step ``s`` (the streams do not depend on the
  method), and evaluation image ``i`` starts from the same initial latent.
* **Bit-identical resume.** The state of every stream at step ``s`` is a function of ``s``; a
  checkpoint only needs the step counter to continue exactly where it stopped.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# Stream names. The positive branch of every method uses DATA and NOISE; method-specific branches
# (NSYNC's negative and anchor passes) get streams of their own so they never shift the positive one.
DATA = "data"
NOISE = "noise"
NEGATIVE_NOISE = "negative-noise"
ANCHOR = "anchor"
GLOBAL = "global"  # reseeds torch's global RNG each step (e.g. for dropout inside the models)
EVAL = "eval"
LORA_INIT = "lora-init"
NEGATIVE_SET = "negative-set"


def derive_seed(run_seed: int, *names: str | int) -> int:
    """A 63-bit seed from the run seed and a stream path, stable across platforms and versions."""
    key = "/".join(["nsync-bench", str(int(run_seed)), *(str(n) for n in names)])
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def torch_generator(run_seed: int, *names: str | int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded for the stream ``names``."""
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(run_seed, *names))
    return generator


def numpy_rng(run_seed: int, *names: str | int) -> np.random.Generator:
    """A fresh numpy ``Generator`` seeded for the stream ``names``."""
    return np.random.default_rng(derive_seed(run_seed, *names))


def batch_indices(run_seed: int, step: int, batch_size: int, dataset_size: int) -> list[int]:
    """Indices of the positive batch at ``step``: consecutive slices of seeded per-epoch permutations.

    The sample stream is the concatenation of permutations of ``range(dataset_size)``, epoch ``e``
    drawn from stream ``(data, epoch, e)``; step ``s`` takes items ``[s*B, (s+1)*B)``. Batches never
    mix a partial epoch's leftovers with duplicates, and every method with the same batch size sees
    the same batches.
    """
    if dataset_size <= 0:
        raise ValueError("dataset_size must be positive")
    indices: list[int] = []
    start = step * batch_size
    cache: dict[int, np.ndarray] = {}
    for position in range(start, start + batch_size):
        epoch, offset = divmod(position, dataset_size)
        if epoch not in cache:
            cache[epoch] = numpy_rng(run_seed, DATA, "epoch", epoch).permutation(dataset_size)
        indices.append(int(cache[epoch][offset]))
    return indices
