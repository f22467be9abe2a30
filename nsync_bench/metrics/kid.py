r"""Kernel Inception Distance (KID): the subset-averaged unbiased MMD² with a cubic polynomial kernel.

Equation (Bińkowski et al. 2018), kernel ``k(x, y) = (x·y / d + 1)^3`` on d-dimensional features;
for subsets ``X = {x_i}``, ``Y = {y_j}`` of size m each::

    MMD²_u = [sum_{i!=j} k(x_i, x_j) + sum_{i!=j} k(y_i, y_j)] / (m (m-1)) - 2 sum_{i,j} k(x_i, y_j) / m²

(the cross term includes i == j, as in every KID reference). KID is the mean of MMD²_u over
``num_subsets`` pairs of subsets drawn without replacement.

Reproduces clean-fid's ``kernel_distance(feats1, feats2, num_subsets=100, max_subset_size=1000)``
(``cleanfid/fid.py``; docs/metrics.md §3.1) exactly: ``m = min(n_a, n_b, max_subset_size)``, per
subset ``x`` from the *second* set and ``y`` from the *first*, each drawn without replacement.
The estimator equals gan-metrics-pytorch's ``polynomial_mmd_averages`` (which NSYNC used,
docs/metrics.md §3.1) whenever its fixed ``subset_size`` does not exceed the set sizes (that code
raises otherwise); the std over subsets is what gan-metrics prints beside the mean.

Differences from clean-fid: a local seeded ``np.random.default_rng`` instead of the global
``np.random`` (so the subsets differ from clean-fid's for the same integer seed, but are
reproducible), float64 arithmetic whatever the input dtype, and the std is returned too.
When ``n_a == n_b <= max_subset_size`` every subset is a permutation of a full set and the
value does not depend on the seed at all.

Values are raw (not ×10³) and can be negative: the estimator is unbiased, not non-negative.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from nsync_bench.errors import DataError
from nsync_bench.metrics._arrays import as_sample_matrix, check_same_dim
from nsync_bench.metrics.legacy import inception_mode_id, legacy_subset
from nsync_bench.metrics.spec import MetricScore, MetricSpec

if TYPE_CHECKING:
    from nsync_bench.config.run_config import MetricsConfig

__all__ = ["SPEC", "kernel_inception_distance", "mmd2_unbiased", "polynomial_kernel"]


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(x @ y.T / d + 1) ** 3`` for float64 arrays x (n, d), y (m, d) (sklearn's default degree-3 kernel)."""
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    nx, ny = x.shape[0], y.shape[0]
    kxx = polynomial_kernel(x, x)
    kyy = polynomial_kernel(y, y)
    kxy = polynomial_kernel(x, y)
    sxx = (kxx.sum() - np.trace(kxx)) / (nx * (nx - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (ny * (ny - 1))
    return float(sxx + syy - 2.0 * kxy.sum() / (nx * ny))


def mmd2_unbiased(x: Any, y: Any) -> float:
    """Unbiased MMD²_u between two sample sets with the cubic polynomial kernel ``(x·y/d + 1)^3``.

    Input contract: ``x`` (n_x, d), ``y`` (n_y, d), finite, n_x, n_y >= 2, same d; numpy or torch;
    float64 internally. ``n_x != n_y`` is allowed (the within-set sums are divided by
    ``n(n-1)`` of their own set, the cross sum by ``n_x n_y``); for n_x == n_y == m it is the
    per-subset quantity of clean-fid's ``kernel_distance``. Symmetric in x and y.
    """
    a = as_sample_matrix(x, "x", min_samples=2)
    b = as_sample_matrix(y, "y", min_samples=2)
    check_same_dim(a, b, "x", "y")
    return _mmd2_unbiased(a, b)


def _positive_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def kernel_inception_distance(
    feats_a: Any,
    feats_b: Any,
    *,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID between two feature sets: ``(mean, std)`` of MMD²_u over ``num_subsets`` random subset pairs.

    Input contract: ``feats_a`` (n_a, d) and ``feats_b`` (n_b, d), finite, same d, and
    ``min(n_a, n_b) >= 2`` (an unbiased within-set term needs two samples); numpy or torch;
    float64 internally. ``num_subsets >= 1``, ``max_subset_size >= 2``.

    The subset size is ``m = min(n_a, n_b, max_subset_size)``. For each subset, ``m`` rows of
    ``feats_b`` then ``m`` rows of ``feats_a`` are drawn without replacement from a local
    ``np.random.default_rng(seed)`` (clean-fid's order). ``std`` is the population standard
    deviation over subsets (ddof = 0, numpy's default); it measures subset-to-subset spread,
    not the standard error of the mean (divide by ``sqrt(num_subsets)`` for that).

    When ``n_a == n_b <= max_subset_size`` every subset is a permutation of the full sets, so
    the value is computed once (no draws) and returned with ``std = 0.0``; the seed is unused.

    The mean equals ``cleanfid.fid.kernel_distance(feats_a, feats_b, num_subsets, max_subset_size)``
    in that deterministic case (to rounding) and in distribution otherwise.
    """
    num_subsets = _positive_int(num_subsets, "num_subsets", 1)
    max_subset_size = _positive_int(max_subset_size, "max_subset_size", 2)
    a = as_sample_matrix(feats_a, "feats_a", min_samples=2)
    b = as_sample_matrix(feats_b, "feats_b", min_samples=2)
    check_same_dim(a, b, "feats_a", "feats_b")
    m = min(a.shape[0], b.shape[0], max_subset_size)
    if m == a.shape[0] == b.shape[0]:
        # Every subset would be a permutation of the full sets, and MMD²_u is permutation-
        # invariant: all num_subsets values are equal (up to summation-order rounding).
        return _mmd2_unbiased(b, a), 0.0
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets, dtype=np.float64)
    for i in range(num_subsets):
        x = b[rng.choice(b.shape[0], m, replace=False)]
        y = a[rng.choice(a.shape[0], m, replace=False)]
        values[i] = _mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())


def estimator_id(config: MetricsConfig) -> str:
    """``kid-mmd2u-cubic(subsets=..,max_size=..,seed=..,<mode>)``: the unbiased cubic-kernel MMD² over subsets."""
    return (f"kid-mmd2u-cubic(subsets={config.kid_subsets},max_size={config.kid_subset_size},"
            f"seed={config.seed},{inception_mode_id(config)})")


def score(gen: np.ndarray, real: np.ndarray, config: MetricsConfig) -> MetricScore:
    """KID (mean, std over subsets) of the generated against the real features (whole batches under nsync-legacy)."""
    gen, real = legacy_subset(gen, real, config, "kid")
    value, std = kernel_inception_distance(gen, real, num_subsets=config.kid_subsets,
                                           max_subset_size=config.kid_subset_size, seed=config.seed)
    return MetricScore(value, std, len(gen), len(real))


SPEC = MetricSpec(name="kid", direction="lower", extractor="inception", estimator_id=estimator_id, score=score,
                  min_images=2, reliable_images=50)
