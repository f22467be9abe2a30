r"""Fréchet distance (FID) between two feature sets, and the bootstrapped FID NSYNC reported.

Equation (Heusel et al. 2017; Dowson & Landau 1982), for Gaussians fitted to the two sets::

    FD = ||mu1 - mu2||^2 + Tr S1 + Tr S2 - 2 Tr sqrt(S1 S2)

with ``mu`` the sample means and ``S`` the sample covariances (``np.cov``, ddof = 1), all in
float64. This reproduces ``frechet_distance`` of clean-fid (``cleanfid/fid.py``), of pytorch-fid
and of abdulfatir/gan-metrics-pytorch (``fid_score.py::calculate_frechet_distance``), which
NSYNC used (``docs/metrics.md`` §2.1, §2.3). FID is "FD on Inception pool3
features"; which extractor and preprocessing produced the features is the caller's business
(and decides whether numbers are comparable across papers).

Differences from the references, all numerical, none in the definition:

* No ``scipy.linalg.sqrtm`` (its ``disp`` argument is removed in SciPy 1.18, and SciPy 1.11.2/3
  returned garbage for some FID products, clean-fid#53). Only the *trace* of the square root is
  needed, and for any factorisations ``S1 = F1' F1``, ``S2 = F2' F2``::

      Tr sqrt(S1 S2) = sum_i sigma_i(F1 F2')          (nuclear norm of F1 F2')

  because ``S1 S2 = F1'(F1 F2' F2)`` has the same non-zero eigenvalues as
  ``F1 F2' F2 F1' = K K'`` with ``K = F1 F2'``, i.e. the squared singular values of K.
  Two factorisations are used:

  - covariance path (:func:`fid_from_stats`): ``F = S^(1/2)``, the symmetric square root from
    ``eigh`` (eigenvalues below ``d * eps * lambda_max``, i.e. not resolved by ``eigh``, set
    to 0), then one SVD of ``R1 R2``.
  - low-rank path (:func:`frechet_distance`, when ``min(n1, n2) <= d``): ``F`` = centred data /
    sqrt(n - 1), so K is the n1 x n2 matrix ``A B' / sqrt((n1-1)(n2-1))``; no d x d matrix is
    formed at all, and it is exact for rank-deficient covariances (n < d).

  Why singular values rather than eigenvalues: an SVD gets every singular value, small ones
  included, to absolute accuracy ~eps ||K||, and sums them with no further square root. Taking
  ``sqrt(eigvalsh(R1 S2 R1))`` instead (symmetric, also real) turns rounding-level eigenvalues
  ~eps in the null directions of rank-deficient covariances into ~sqrt(eps) each: measured
  relative error 2.4e-8 against a 50-digit mpmath reference for n = 20, d = 64, versus ~1e-15
  with the SVD of ``R1 R2`` and with the low-rank path. (Without the eigenvalue threshold
  the SVD route still loses ~1e-9 when only one covariance is rank-deficient.) The eigenvalues of the
  non-symmetric ``S1 S2`` (torchmetrics' route) are worse still: their conditioning is that of
  the eigenvector matrix ``S1^(1/2) Q``, i.e. ``sqrt(cond S1)``, infinite for singular
  covariances; the zero eigenvalue can be defective and rounding splits it into complex pairs
  -- the "Imaginary component" failure of the sqrtm-based references.

* No ``eps * I`` retry and no imaginary-part check: neither can be triggered here.
* Means are float64 (clean-fid averages float32 features in float32).

The result is not clipped at 0: for (near-)identical sets it can be a rounding-level negative.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from nsync_bench.errors import DataError
from nsync_bench.metrics._arrays import as_float64, as_sample_matrix, check_finite, check_same_dim
from nsync_bench.metrics.legacy import inception_mode_id, legacy_subset
from nsync_bench.metrics.spec import MetricScore, MetricSpec

if TYPE_CHECKING:
    from nsync_bench.config.run_config import MetricsConfig

__all__ = ["SPEC", "bootstrap_fid", "fid_from_stats", "frechet_distance", "trace_sqrtm_product"]

# The low-rank path materialises the n1 x n2 cross-product matrix: at most this many float64
# entries (2**24 = 128 MiB); larger sets fall back to the covariance path.
_LOW_RANK_MAX_ENTRIES = 1 << 24


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix, with unresolvable eigenvalues set to 0.

    ``eigh`` determines eigenvalues only to ~eps * lambda_max, so those at or below
    ``d * eps * lambda_max`` (numpy's ``matrix_rank`` tolerance) -- rounding-level negatives
    included -- are rounding noise; their square roots (~sqrt(eps)) would leak into
    ``sigma1^(1/2) sigma2^(1/2)`` when the other covariance is not null there. Zeroing them
    drops at most what rounding already blurred.
    """
    w, v = np.linalg.eigh(sigma)
    tol = max(float(w[-1]), 0.0) * sigma.shape[0] * np.finfo(np.float64).eps
    w = np.where(w > tol, w, 0.0)
    return (v * np.sqrt(w)) @ v.T


def trace_sqrtm_product(sigma1: Any, sigma2: Any) -> float:
    """``Tr sqrt(sigma1 @ sigma2)`` for symmetric positive semi-definite ``sigma1``, ``sigma2`` (d x d).

    Computed as the sum of the singular values of ``sigma1^(1/2) @ sigma2^(1/2)`` (symmetric
    square roots by ``eigh``; see the module docstring for why this beats ``sqrtm`` or
    eigenvalues). Inputs are symmetrised; eigenvalues at or below ``d * eps * lambda_max``
    (negative ones from rounding included) are treated as 0.
    """
    s1 = _as_covariance(sigma1, "sigma1")
    s2 = _as_covariance(sigma2, "sigma2")
    check_same_dim(s1, s2, "sigma1", "sigma2")
    return _trace_sqrtm_product(s1, s2)


def _trace_sqrtm_product(s1: np.ndarray, s2: np.ndarray) -> float:
    sv = np.linalg.svd(_sqrt_psd(s1) @ _sqrt_psd(s2), compute_uv=False)
    return float(np.sum(sv))


def _trace_sqrtm_product_lowrank(a_centred: np.ndarray, b_centred: np.ndarray) -> float:
    """``Tr sqrt(S1 S2)`` from centred data: nuclear norm of ``A B'`` / sqrt((n1-1)(n2-1))."""
    n1, n2 = a_centred.shape[0], b_centred.shape[0]
    sv = np.linalg.svd(a_centred @ b_centred.T, compute_uv=False)
    return float(np.sum(sv) / math.sqrt((n1 - 1) * (n2 - 1)))


def _as_covariance(sigma: Any, name: str) -> np.ndarray:
    s = as_float64(sigma, name)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise DataError(f"{name} must be a square (d, d) covariance matrix, got shape {s.shape}.")
    check_finite(s, name)
    return 0.5 * (s + s.T)


def _as_mean(mu: Any, name: str) -> np.ndarray:
    m = as_float64(mu, name)
    if m.ndim != 1:
        raise DataError(f"{name} must be a 1-D mean vector of length d, got shape {m.shape}.")
    check_finite(m, name)
    return m


def fid_from_stats(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Input contract: ``mu1``, ``mu2`` finite 1-D vectors of length d; ``sigma1``, ``sigma2``
    finite (d, d) symmetric positive semi-definite matrices (e.g. ``np.cov(feats, rowvar=False)``);
    numpy arrays or torch tensors, computed in float64. Asymmetry is removed by symmetrising;
    eigenvalues at or below ``d * eps * lambda_max`` (negative ones included) are treated as
    rounding and set to 0 (not reported), so a matrix that is not PSD is not detected.

    Returns ``||mu1 - mu2||^2 + Tr sigma1 + Tr sigma2 - 2 Tr sqrt(sigma1 sigma2)`` (a float, not
    clipped at 0). Same value as clean-fid's ``frechet_distance(mu1, sigma1, mu2, sigma2)`` where
    that succeeds.
    """
    m1 = _as_mean(mu1, "mu1")
    m2 = _as_mean(mu2, "mu2")
    s1 = _as_covariance(sigma1, "sigma1")
    s2 = _as_covariance(sigma2, "sigma2")
    check_same_dim(m1, m2, "mu1", "mu2")
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if s.shape[0] != m1.shape[0]:
            raise DataError(f"{name} has shape {s.shape} but the mean vectors have length {m1.shape[0]}.")
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * _trace_sqrtm_product(s1, s2))


def _frechet_distance_checked(a: np.ndarray, b: np.ndarray) -> float:
    """FD of validated float64 (n, d) arrays (shared by :func:`frechet_distance` and the bootstrap)."""
    (n1, d), n2 = a.shape, b.shape[0]
    mu1 = a.mean(axis=0)
    mu2 = b.mean(axis=0)
    if min(n1, n2) <= d and n1 * n2 <= _LOW_RANK_MAX_ENTRIES:
        ac = a - mu1
        bc = b - mu2
        diff = mu1 - mu2
        tr1 = float(np.sum(ac * ac)) / (n1 - 1)
        tr2 = float(np.sum(bc * bc)) / (n2 - 1)
        return float(diff @ diff + tr1 + tr2 - 2.0 * _trace_sqrtm_product_lowrank(ac, bc))
    return fid_from_stats(mu1, np.cov(a, rowvar=False), mu2, np.cov(b, rowvar=False))


def frechet_distance(feats_a: Any, feats_b: Any) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (plain FID, no bootstrap).

    Input contract: ``feats_a`` (n_a, d) and ``feats_b`` (n_b, d), finite, n_a, n_b >= 2 (a
    covariance needs two samples), same d; numpy arrays or torch tensors; float64 internally.
    The sets may have different sizes, and n < d (rank-deficient covariances) is supported and
    accurate -- but FID from fewer samples than dimensions is a poor estimate of the
    population distance (docs/metrics.md §7); that is a statistical caveat, not a numerical one.

    Means and ddof=1 covariances as ``np.cov``; when ``min(n_a, n_b) <= d`` the trace term is
    computed from the data (nuclear norm of ``A B'``, same value, see the module docstring),
    otherwise via :func:`fid_from_stats`.

    Raises :class:`~nsync_bench.errors.DataError` (a ``ValueError``) for fewer than 2 samples,
    different dims, non-2-D input or non-finite values.
    """
    a = as_sample_matrix(feats_a, "feats_a", min_samples=2)
    b = as_sample_matrix(feats_b, "feats_b", min_samples=2)
    check_same_dim(a, b, "feats_a", "feats_b")
    return _frechet_distance_checked(a, b)


def bootstrap_fid(feats_a: Any, feats_b: Any, *, n_bootstraps: int = 10, seed: int = 0) -> tuple[float, float]:
    """Bootstrapped FID as abdulfatir/gan-metrics-pytorch computes it, i.e. as NSYNC reported it.

    Each of ``n_bootstraps`` rounds resamples *both* sets with replacement to their own size
    (first ``feats_a``, then ``feats_b``, as gan-metrics draws true then fake) and computes
    :func:`frechet_distance` of the resampled sets. Returns ``(mean, std)`` over the rounds,
    ``std`` with ddof = 0 (numpy's default, as gan-metrics' ``fid_values.std()``).

    Input contract: as :func:`frechet_distance` (n_a, n_b >= 2, same d, finite); ``n_bootstraps
    >= 1``; ``seed`` feeds a local ``np.random.default_rng`` (the reference used the unseeded
    global ``np.random``, so its exact draws cannot be reproduced; only the estimator can).
    Note bootstrapped FID is not plain FID: duplicated rows shrink the effective sample size,
    which biases the value upward. A resample whose rows are all identical has a zero
    covariance; FD is still defined then.
    """
    if not isinstance(n_bootstraps, (int, np.integer)) or isinstance(n_bootstraps, bool) or n_bootstraps < 1:
        raise DataError(f"n_bootstraps must be a positive integer, got {n_bootstraps!r}.")
    a = as_sample_matrix(feats_a, "feats_a", min_samples=2)
    b = as_sample_matrix(feats_b, "feats_b", min_samples=2)
    check_same_dim(a, b, "feats_a", "feats_b")
    rng = np.random.default_rng(seed)
    values = np.empty(int(n_bootstraps), dtype=np.float64)
    for i in range(int(n_bootstraps)):
        ia = rng.choice(a.shape[0], a.shape[0], replace=True)
        ib = rng.choice(b.shape[0], b.shape[0], replace=True)
        values[i] = _frechet_distance_checked(a[ia], b[ib])
    return float(values.mean()), float(values.std())


def estimator_id(config: MetricsConfig) -> str:
    """``fid(<mode>)``, or under nsync-legacy ``fid-bootstrap(n=<bootstraps>,seed=<seed>,<mode>)``."""
    mode = inception_mode_id(config)
    if config.inception_mode == "nsync-legacy":
        return f"fid-bootstrap(n={config.fid_bootstraps},seed={config.seed},{mode})"
    return f"fid({mode})"


def score(gen: np.ndarray, real: np.ndarray, config: MetricsConfig) -> MetricScore:
    """Plain FID, or under nsync-legacy the bootstrapped FID of the whole-batch subsets (with its std)."""
    gen, real = legacy_subset(gen, real, config, "fid")
    if config.inception_mode == "nsync-legacy":
        value, std = bootstrap_fid(gen, real, n_bootstraps=config.fid_bootstraps, seed=config.seed)
        return MetricScore(value, std, len(gen), len(real))
    return MetricScore(frechet_distance(gen, real), None, len(gen), len(real))


SPEC = MetricSpec(name="fid", direction="lower", extractor="inception", estimator_id=estimator_id, score=score,
                  min_images=2, reliable_images=50)
