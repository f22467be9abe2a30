"""Exact paired tests and the probability of improvement: what a few seeds can say without normality.

Under the null hypothesis that candidate and baseline are exchangeable within a seed, each oriented
difference ``d_i`` is as likely to have either sign, so the 2^n sign patterns of the observed
``|d_i|`` are equally likely. The **sign-flip permutation test** compares ``|Σ d_i|`` with the sums
of all those patterns; the **Wilcoxon signed-rank test** does the same with the midranks of
``|d_i|`` in place of their values (zeros dropped). Both two-sided p-values are

    p = #{patterns ε : |Σ ε_i a_i| >= |Σ sign(d_i) a_i|} / 2^n      (a = |d| or its ranks)

enumerated in full up to :data:`EXACT_MAX_N` pairs (meet in the middle: the sums of each half's
2^(n/2) patterns, sorted, then counted by binary search), and beyond that estimated from
``n_resamples`` random patterns drawn from a stream of their own, ``(1 + hits) / (1 + n_resamples)``
with its Monte Carlo standard error. The smallest p-value either test can give is ``2 / 2^n``.

The **probability of improvement** is the share of seeds in which the candidate is better
(``d_i > 0``), with the exact (Clopper-Pearson) binomial interval. Pure functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from nsync_bench.seeding import numpy_rng

__all__ = ["EXACT_MAX_N", "ExactTest", "Improvement", "clopper_pearson", "exact_tail_counts",
           "probability_of_improvement", "sign_flip_test", "signed_rank_test"]

EXACT_MAX_N = 20  # 2^20 patterns: two halves of 1,024 sums each, enumerated in milliseconds
MC_RESAMPLES = 100_000  # beyond EXACT_MAX_N: Monte Carlo standard error <= 0.0016, ~0.0007 at p = 0.05
# Sums of the same numbers in another order differ by rounding (~n * 1e-16 relative): a pattern whose
# sum equals the observed one up to this relative tolerance counts as "as extreme", as it must.
REL_TOL = 1e-9
# Below this many pairs the whole 2^n x n sign matrix is multiplied at once; above, meet in the middle.
_MATRIX_MAX_N = 10
_CHUNK_ELEMENTS = 2**23


@dataclass(frozen=True)
class ExactTest:
    """A two-sided p-value, how it was computed ("exact", "monte-carlo", "asymptotic" or "none"), and
    its Monte Carlo standard error (0 when exact)."""

    p: float
    method: str
    mc_se: float = 0.0
    statistic: float = math.nan


@dataclass(frozen=True)
class Improvement:
    """Share of seeds where the candidate is better (``wins / n``; ties count as not better), and its
    exact binomial interval."""

    share: float
    low: float
    high: float
    wins: int
    ties: int
    n: int


def _signs(k: int) -> np.ndarray:
    """All 2^k sign patterns as a (2^k, k) matrix of ±1 (row 0 all +1)."""
    bits = (np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1
    return (1 - 2 * bits).astype(np.float64)


def exact_tail_counts(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each row ``a`` of ``values`` (S x n, non-negative), how many of the 2^n sign patterns ``ε``
    give ``Σ ε_i a_i >= threshold`` (one per row). Full enumeration; vectorised over rows."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    rows, n = values.shape
    if n <= _MATRIX_MAX_N:
        signs = _signs(n)
        out = np.empty(rows, dtype=np.int64)
        step = max(1, _CHUNK_ELEMENTS // signs.shape[0])
        for start in range(0, rows, step):
            sums = signs @ values[start:start + step].T  # (2^n, chunk)
            out[start:start + step] = np.count_nonzero(sums >= thresholds[start:start + step], axis=0)
        return out
    half = n // 2
    left = values[:, :half] @ _signs(half).T  # (S, 2^half)
    right = np.sort(values[:, half:] @ _signs(n - half).T, axis=1)  # (S, 2^(n-half)), rows sorted
    total = left.shape[1] * right.shape[1]
    out = np.empty(rows, dtype=np.int64)
    for j in range(rows):  # pairs (l, r) with l + r >= threshold: for each l, the r >= threshold - l
        out[j] = total - int(np.searchsorted(right[j], thresholds[j] - left[j]).sum())
    return out


def _two_sided_exact(a: np.ndarray, observed: float) -> float:
    """P(|S| >= |observed|) over all sign patterns of ``a`` (the null distribution is symmetric)."""
    threshold = abs(observed) - REL_TOL * float(np.sum(a))
    count = int(exact_tail_counts(a[None, :], np.array([threshold]))[0])
    return min(1.0, 2.0 * count / 2.0 ** a.size)


def _two_sided_monte_carlo(a: np.ndarray, observed: float, n_resamples: int, seed: int,
                           stream: str) -> tuple[float, float]:
    rng = numpy_rng(seed, "stats", stream)
    threshold = abs(observed) - REL_TOL * float(np.sum(a))
    hits = 0
    rows = max(1, _CHUNK_ELEMENTS // a.size)
    for start in range(0, n_resamples, rows):
        count = min(rows, n_resamples - start)
        signs = rng.integers(0, 2, size=(count, a.size), dtype=np.int8) * 2 - 1
        hits += int(np.count_nonzero(np.abs(signs @ a) >= threshold))
    p = (1.0 + hits) / (1.0 + n_resamples)
    return p, math.sqrt(p * (1.0 - p) / n_resamples)


def _as_differences(d: object) -> np.ndarray:
    arr = np.asarray(d, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"differences must be a non-empty, finite 1-D array (one per seed); got {arr!r}.")
    return arr


def sign_flip_test(d: object, *, seed: int = 0, n_resamples: int = MC_RESAMPLES,
                   exact_max_n: int = EXACT_MAX_N) -> ExactTest:
    """Two-sided paired sign-flip permutation test of ``E[d] = 0`` on the sum (equivalently the mean).

    Zeros are kept (they contribute nothing to any pattern's sum, so they change no p-value). Exact up
    to ``exact_max_n`` non-zero differences; beyond, a Monte Carlo estimate from ``n_resamples``
    patterns of the stream ``(seed, "stats", "sign-flip")``. All differences zero: p nan, method "none".
    """
    x = _as_differences(d)
    a = np.abs(x[x != 0.0])
    if a.size == 0:
        return ExactTest(math.nan, "none")
    observed = float(np.sum(x))
    if a.size <= exact_max_n:
        return ExactTest(_two_sided_exact(a, observed), "exact", 0.0, observed)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer (e.g. 100000); got {n_resamples!r}.")
    p, se = _two_sided_monte_carlo(a, observed, int(n_resamples), seed, "sign-flip")
    return ExactTest(p, "monte-carlo", se, observed)


def signed_rank_test(d: object, *, exact_max_n: int = EXACT_MAX_N) -> ExactTest:
    """Two-sided Wilcoxon signed-rank test, zeros dropped (Wilcoxon's convention), ties given midranks.

    Up to ``exact_max_n`` non-zero differences the exact conditional null distribution (all sign
    patterns of the midranks, so ties are exact too); beyond, scipy's exact distribution where it
    applies (no ties, n <= 50) and its normal approximation with continuity correction otherwise.
    ``statistic`` is ``min(W+, W-)``. All differences zero: p nan, method "none".
    """
    x = _as_differences(d)
    nonzero = x[x != 0.0]
    if nonzero.size == 0:
        return ExactTest(math.nan, "none")
    ranks = sps.rankdata(np.abs(nonzero))
    w_plus = float(np.sum(ranks[nonzero > 0]))
    statistic = min(w_plus, float(np.sum(ranks)) - w_plus)
    if nonzero.size <= exact_max_n:
        observed = float(np.sum(np.sign(nonzero) * ranks))
        return ExactTest(_two_sided_exact(ranks, observed), "exact", 0.0, statistic)
    ties = np.unique(np.abs(nonzero)).size != nonzero.size
    method = "exact" if nonzero.size <= 50 and not ties else "asymptotic"
    res = sps.wilcoxon(nonzero, zero_method="wilcox", correction=method == "asymptotic", method=method)
    return ExactTest(float(res.pvalue), method, 0.0, float(res.statistic))


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion, k successes in n trials:
    ``[B(α/2; k, n-k+1), B(1-α/2; k+1, n-k)]`` with B the beta quantile, 0 at k = 0 and 1 at k = n."""
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"need 0 <= k <= n and n >= 1; got k = {k!r}, n = {n!r}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1; got {confidence!r}.")
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(sps.beta.ppf(alpha / 2.0, k, n - k + 1))
    high = 1.0 if k == n else float(sps.beta.ppf(1.0 - alpha / 2.0, k + 1, n - k))
    return low, high


def probability_of_improvement(d: object, confidence: float = 0.95) -> Improvement:
    """The share of seeds with ``d_i > 0`` (candidate better) and its Clopper-Pearson interval."""
    x = _as_differences(d)
    wins, ties = int(np.count_nonzero(x > 0.0)), int(np.count_nonzero(x == 0.0))
    low, high = clopper_pearson(wins, int(x.size), confidence)
    return Improvement(wins / x.size, low, high, wins, ties, int(x.size))
