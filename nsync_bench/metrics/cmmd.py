r"""CMMD: maximum mean discrepancy of CLIP embeddings with a Gaussian RBF kernel (Jayasumana et al., CVPR 2024).

Equation, for L2-normalised embeddings ``x_1..x_n`` and ``y_1..y_m``, kernel
``k(a, b) = exp(-gamma ||a - b||^2)`` with ``gamma = 1 / (2 sigma^2)``, ``sigma = 10``::

    CMMD = 1000 * ( mean_{i,j} k(x_i, x_j) + mean_{i,j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j) )

i.e. the *biased* (V-statistic, Gretton et al. 2012 Eq. 5) estimator: the means run over full
matrices including the diagonal. This reproduces ``distance.py::mmd`` of google-research
``cmmd/`` and of its PyTorch port sayakpaul/cmmd-pytorch (which NSYNC used); see
``docs/metrics.md`` §4.1. The embeddings (CLIP ViT-L/14-336 image embeddings in the
reference) come from the caller.

Differences from the references, numerical only:

* float64 instead of float32 (the reference's ×1000 with kernel values all >= e^-0.02 loses
  ~1e-4 to cancellation in float32; docs/metrics.md §4.1);
* kernel means are accumulated as ``mean(expm1(-gamma d²))`` (``k - 1``), so the large
  constant 1 cancels exactly instead of in floating point; the value is the same;
* blockwise accumulation (``block_size`` rows at a time), so a 30k x 30k kernel matrix is
  never materialised;
* squared distances by expansion ``||a||² + ||b||² - 2 a·b`` without clamping, as the reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from nsync_bench.errors import DataError
from nsync_bench.metrics._arrays import as_sample_matrix, check_same_dim
from nsync_bench.metrics.spec import MetricScore, MetricSpec

if TYPE_CHECKING:
    from nsync_bench.config.run_config import MetricsConfig

__all__ = ["GAMMA", "MMD_ESTIMATOR", "SCALE", "SIGMA", "SPEC", "cmmd", "rbf_gamma"]

# google-research cmmd/distance.py: `_SIGMA = 10`, `_SCALE = 1000` (identical in sayakpaul/cmmd-pytorch).
SIGMA = 10.0
SCALE = 1000.0


def rbf_gamma(sigma: float) -> float:
    """The RBF kernel's ``exp(-gamma * d2)`` coefficient for bandwidth ``sigma``."""
    return 1.0 / (2.0 * sigma**2)


GAMMA = rbf_gamma(SIGMA)  # = 0.005; cmmd() derives gamma from SIGMA when called, so it follows SIGMA
# The MMD² estimator _mean_kernel_minus_one computes: the V-statistic (full matrices, diagonals
# included). A label for the estimator id, not a switch.
MMD_ESTIMATOR = "biased"

_DEFAULT_BLOCK = 4096


def _l2_normalise(x: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0.0)
    if zero.size:
        raise DataError(f"{name} has {zero.size} all-zero embedding(s) (first at row {zero[0]}); cannot L2-normalise.")
    return x / norms


def _mean_kernel_minus_one(x: np.ndarray, y: np.ndarray, block_size: int, gamma: float) -> float:
    """``mean_{i,j} (k(x_i, y_j) - 1)`` over the full n x m matrix, ``block_size`` x ``block_size`` at a time."""
    sx = np.einsum("ij,ij->i", x, x)
    sy = np.einsum("ij,ij->i", y, y)
    total = 0.0
    for i in range(0, x.shape[0], block_size):
        xi, sxi = x[i : i + block_size], sx[i : i + block_size, None]
        for j in range(0, y.shape[0], block_size):
            d2 = sxi + sy[None, j : j + block_size] - 2.0 * (xi @ y[j : j + block_size].T)
            total += float(np.expm1(-gamma * d2).sum())
    return total / (x.shape[0] * y.shape[0])


def cmmd(emb_a: Any, emb_b: Any, *, block_size: int = _DEFAULT_BLOCK) -> float:
    """CMMD between two embedding sets (biased MMD², RBF sigma = 10, ×1000), as a float.

    Input contract: ``emb_a`` (n_a, d) and ``emb_b`` (n_b, d), finite, no all-zero rows, n >= 1
    each (the V-statistic is defined for single samples), same d; numpy or torch; float64
    internally. Every row is L2-normalised here; the reference embeddings are already unit
    norm, so for them this is idempotent (up to rounding), and for unnormalised input it
    applies the normalisation the reference pipeline would have applied.

    Symmetric in its arguments (the reference README says the two directories are
    interchangeable), and exactly 0 for identical inputs. ``block_size`` only bounds memory
    (about ``8 * block_size²`` bytes per block); it does not change the value beyond rounding.
    """
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise DataError(f"block_size must be a positive integer, got {block_size!r}.")
    x = as_sample_matrix(emb_a, "emb_a", min_samples=1)
    y = as_sample_matrix(emb_b, "emb_b", min_samples=1)
    check_same_dim(x, y, "emb_a", "emb_b")
    x = _l2_normalise(x, "emb_a")
    y = _l2_normalise(y, "emb_b")
    bs = int(block_size)
    gamma = rbf_gamma(SIGMA)
    kxx = _mean_kernel_minus_one(x, x, bs, gamma)
    kyy = _mean_kernel_minus_one(y, y, bs, gamma)
    kxy = _mean_kernel_minus_one(x, y, bs, gamma)
    return float(SCALE * (kxx + kyy - 2.0 * kxy))


def _number(x: float) -> str:
    """A constant as the id writes it: ``10`` for 10.0, otherwise the shortest exact repr (``12.5``)."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def estimator_id(config: MetricsConfig) -> str:
    """``cmmd-rbf(sigma=<SIGMA>,scale=<SCALE>,<MMD_ESTIMATOR>)``, from this module's constants (no config value)."""
    return f"cmmd-rbf(sigma={_number(SIGMA)},scale={_number(SCALE)},{MMD_ESTIMATOR})"


def score(gen: np.ndarray, real: np.ndarray, config: MetricsConfig) -> MetricScore:
    """CMMD of the generated against the real CLIP embeddings (every image is used; no std)."""
    return MetricScore(cmmd(gen, real), None, len(gen), len(real))


SPEC = MetricSpec(name="cmmd", direction="lower", extractor="clip", estimator_id=estimator_id, score=score)
