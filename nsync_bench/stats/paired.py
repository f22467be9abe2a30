"""Paired statistics for comparing methods across shared seeds.

The unit of analysis is the *seed* (one value per run, e.g. a run's FID): under common random
numbers (docs/architecture.md, "Shared seeds") the candidate and the baseline trained with seed ``s`` form a
pair, so every test here is a paired test on per-seed differences. Pure functions on float64 numpy
arrays; no I/O; every stochastic function takes an explicit ``seed``.

Differences are *oriented* so that a positive value means the candidate is better:
``d = baseline - candidate`` for lower-is-better metrics (FID, KID, CMMD) and
``d = candidate - baseline`` for higher-is-better metrics (CSD). The claim under test is always
"the candidate improves on the baseline", i.e. ``E[d] > 0``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import special
from scipy import stats as sps

__all__ = ["BOOTSTRAP_MIN_N", "PairedComparison", "Summary", "bootstrap_ci", "describe", "holm_bonferroni",
           "paired_comparison", "verdict"]

Direction = Literal["lower", "higher"]
BootstrapMethod = Literal["percentile", "bca"]
Verdict = Literal["supported", "contradicted", "inconclusive"]

# Elements (resamples x n) drawn per chunk: 2**20 int64 indices plus the gathered float64 values is
# ~16 MiB, whatever n_resamples is. Chunk size depends only on n, so results depend only on the seed.
_CHUNK_ELEMENTS = 2**20
# Below this many pairs the comparison CI is the paired t-interval, not a bootstrap one. A bootstrap
# of n values has at most C(2n-1, n) distinct resampled means (3 for n = 2, 10 for n = 3) and its
# tails are the extreme data points; in simulation (normal differences, 95 % nominal, 400 draws)
# BCa/percentile intervals covered the true mean 71 % of the time at n = 3, 85 % at n = 5 and
# 89 % at n = 8-10, while the t-interval is exact under normality and agrees with the paired t-test.
BOOTSTRAP_MIN_N = 10
# Wilcoxon: scipy's exact null distribution is cheap up to here and the normal approximation poor below.
_WILCOXON_EXACT_MAX_N = 50


def _as_1d(values: object, name: str) -> np.ndarray:
    """``values`` as a non-empty, finite float64 1-D array, or a ValueError saying why not."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per seed); got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; at least 1 value needed.")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(
            f"{name} has non-finite values at positions {bad[:10].tolist()} "
            f"(e.g. {float(arr[bad[0]])}); drop or repair those runs before computing statistics."
        )
    return arr


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1 (e.g. 0.95); got {confidence!r}.")
    return float(confidence)


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and Student-t confidence interval of the mean."""

    mean: float
    std: float
    n: int
    ci_low: float
    ci_high: float
    confidence: float


def describe(values: object, confidence: float = 0.95) -> Summary:
    """Summarise per-seed values: mean, sample std (ddof=1) and a Student-t CI of the mean.

    ``CI = mean ± t_{(1+confidence)/2, n-1} · s / sqrt(n)`` with ``s`` the sample standard deviation.
    The t interval assumes the per-seed values are i.i.d. and roughly normal; with n = 1 the std and
    the CI are nan (there is no spread to estimate), with n = 0 a ValueError is raised.
    """
    confidence = _check_confidence(confidence)
    x = _as_1d(values, "values")
    n = int(x.size)
    mean = float(np.mean(x))
    if n < 2:
        return Summary(mean, math.nan, n, math.nan, math.nan, confidence)
    std = float(np.std(x, ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * std / math.sqrt(n)
    return Summary(mean, std, n, mean - half, mean + half, confidence)


def _apply_statistic(statistic: Callable[..., Any], samples: np.ndarray) -> np.ndarray:
    """``statistic`` over the last axis of ``samples`` (vectorised via ``axis=-1`` when supported)."""
    try:
        out = np.asarray(statistic(samples, axis=-1), dtype=np.float64)
    except TypeError:  # a statistic without an ``axis`` keyword: one row at a time
        out = np.array([float(statistic(row)) for row in samples], dtype=np.float64)
    if out.shape != samples.shape[:-1]:
        raise ValueError(
            f"statistic must reduce the last axis to one number per resample; got shape {out.shape} "
            f"for input shape {samples.shape}. Pass a function like np.mean or np.median."
        )
    return out


def _bootstrap_distribution(x: np.ndarray, statistic: Callable[..., object], n_resamples: int, seed: int) -> np.ndarray:
    """``n_resamples`` values of ``statistic`` on resamples of ``x`` with replacement, drawn in chunks."""
    rng = np.random.default_rng(seed)
    n = x.size
    rows = max(1, _CHUNK_ELEMENTS // n)
    out = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = _apply_statistic(statistic, x[idx])
    return out


def _jackknife(x: np.ndarray, statistic: Callable[..., object]) -> np.ndarray:
    """Leave-one-out values ``theta_(i)`` of ``statistic``, computed in chunks of rows."""
    n = x.size
    rows = max(1, _CHUNK_ELEMENTS // max(n - 1, 1))
    cols = np.arange(n - 1)
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, rows):
        left_out = np.arange(start, min(start + rows, n))[:, None]
        out[start : start + left_out.shape[0]] = _apply_statistic(statistic, x[cols + (cols >= left_out)])
    return out


def _bca_levels(
    x: np.ndarray, statistic: Callable[..., object], boot: np.ndarray, theta: float, alpha: float
) -> list[float] | None:
    """BCa quantile levels ``(a1, a2)`` (Efron 1987), or None where BCa is undefined.

    ``z0 = Φ⁻¹(share of bootstrap values below θ̂, ties counted half)``;
    ``a = Σ(θ̄ - θ_(i))³ / (6 [Σ(θ̄ - θ_(i))²]^{3/2})`` from the jackknife;
    ``a_k = Φ(z0 + (z0 + z_k) / (1 - a (z0 + z_k)))`` for ``z_k = Φ⁻¹(α/2), Φ⁻¹(1 - α/2)``.
    Undefined when every bootstrap value lies on one side of θ̂ (z0 infinite), the jackknife
    values are all equal (a = 0/0), or ``1 - a (z0 + z_k) <= 0``.
    """
    share = (np.count_nonzero(boot < theta) + np.count_nonzero(boot <= theta)) / (2.0 * boot.size)
    z0 = float(special.ndtri(share))
    if x.size < 3 or not math.isfinite(z0):
        return None
    jack = _jackknife(x, statistic)
    dev = jack.mean() - jack
    denom = 6.0 * float(np.sum(dev**2)) ** 1.5
    if not denom > 0.0:
        return None
    accel = float(np.sum(dev**3)) / denom
    levels = []
    for z in (special.ndtri(alpha / 2.0), special.ndtri(1.0 - alpha / 2.0)):
        shrink = 1.0 - accel * (z0 + z)
        if not shrink > 0.0:
            return None
        levels.append(float(special.ndtr(z0 + (z0 + z) / shrink)))
    return levels


def _bootstrap_interval(
    x: np.ndarray, statistic: Callable[..., object], n_resamples: int, confidence: float, seed: int, method: str
) -> tuple[float, float, str]:
    """``(low, high, method actually used)``; BCa falls back to percentile where it is undefined."""
    if method not in ("percentile", "bca"):
        raise ValueError(f"unknown bootstrap method {method!r}; valid methods: 'percentile', 'bca'.")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer (e.g. 10000); got {n_resamples!r}.")
    theta = float(np.asarray(statistic(x), dtype=np.float64))
    if np.all(x == x[0]):  # every resample equals the data: the interval is a point
        return theta, theta, "degenerate"
    boot = _bootstrap_distribution(x, statistic, int(n_resamples), seed)
    alpha = 1.0 - confidence
    levels = _bca_levels(x, statistic, boot, theta, alpha) if method == "bca" else None
    used = "bca" if levels is not None else "percentile"
    if levels is None:
        levels = [alpha / 2.0, 1.0 - alpha / 2.0]
    low, high = np.quantile(boot, levels)
    return float(low), float(high), used


def bootstrap_ci(
    values: object,
    *,
    statistic: Callable[..., object] = np.mean,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
    method: BootstrapMethod = "percentile",
) -> tuple[float, float]:
    """Nonparametric bootstrap confidence interval of ``statistic(values)``.

    Resamples the n values (the unit of analysis: usually seeds) with replacement ``n_resamples``
    times from ``np.random.default_rng(seed)``, in chunks of about 2**20 drawn values so memory stays
    bounded; ``statistic`` must accept ``axis=-1`` to be vectorised (np.mean, np.median do), else it
    is applied row by row.

    - ``"percentile"``: the ``α/2`` and ``1 - α/2`` quantiles of the bootstrap values, ``α = 1 - confidence``.
      It undercovers at small n (roughly 0.93 for a 95 % CI of a normal mean at n = 30).
    - ``"bca"``: bias-corrected and accelerated (Efron 1987; Efron & Tibshirani 1993, §14.3), with
      acceleration from the jackknife. Where BCa is undefined (all bootstrap values on one side of
      the estimate, constant jackknife, n < 3) it falls back to percentile with a RuntimeWarning.

    All-equal input returns ``(v, v)`` with ``v = statistic(values)``.
    """
    confidence = _check_confidence(confidence)
    x = _as_1d(values, "values")
    low, high, used = _bootstrap_interval(x, statistic, n_resamples, confidence, seed, method)
    if method == "bca" and used == "percentile":
        warnings.warn(
            "BCa interval undefined for these values; returned the percentile interval.", RuntimeWarning, stacklevel=2
        )
    return low, high


@dataclass(frozen=True)
class PairedComparison:
    """Paired comparison of a candidate and a baseline across seeds; positive diff = candidate better.

    ``ci_method`` says how the CI was made: ``"bca"``, ``"percentile"`` (BCa undefined),
    ``"t"`` (fewer than :data:`BOOTSTRAP_MIN_N` pairs: the paired t-interval, no bootstrap),
    ``"degenerate"`` (all differences equal) or ``"none"`` (n < 2, CI nan).
    ``sd_diff`` is the sample standard deviation (ddof 1) of the differences (nan for n < 2).
    ``w_stat`` is scipy's two-sided statistic, min(W+, W-); the sign of the effect is in ``mean_diff``.
    """

    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    t_stat: float
    p_t: float
    w_stat: float
    p_wilcoxon: float
    wilcoxon_method: str
    d_z: float
    direction: str
    ci_method: str = "bca"
    sd_diff: float = math.nan


def _oriented_diff(candidate: object, baseline: object, direction: str) -> np.ndarray:
    if direction not in ("lower", "higher"):
        raise ValueError(
            f"direction must be 'lower' (lower is better, e.g. FID) or 'higher' (e.g. CSD); got {direction!r}."
        )
    cand = _as_1d(candidate, "candidate")
    base = _as_1d(baseline, "baseline")
    if cand.size != base.size:
        raise ValueError(
            f"candidate has {cand.size} values but baseline has {base.size}; pair them by seed "
            "and keep only the seeds both methods finished."
        )
    return base - cand if direction == "lower" else cand - base


def _wilcoxon(diff: np.ndarray) -> tuple[float, float, str]:
    """Two-sided Wilcoxon signed-rank test of the differences: ``(W, p, method)``."""
    if not np.any(diff != 0.0):
        return math.nan, math.nan, "none"
    absd = np.abs(diff)
    exact = diff.size <= _WILCOXON_EXACT_MAX_N and np.all(absd > 0.0) and np.unique(absd).size == absd.size
    if exact:
        res = sps.wilcoxon(diff, zero_method="wilcox", alternative="two-sided", method="exact")
        return float(res.statistic), float(res.pvalue), "exact"
    res = sps.wilcoxon(diff, zero_method="wilcox", correction=True, alternative="two-sided", method="asymptotic")
    return float(res.statistic), float(res.pvalue), "asymptotic"


def paired_comparison(
    candidate: object,
    baseline: object,
    *,
    direction: Direction,
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int = 0,
) -> PairedComparison:
    """Paired comparison of ``candidate`` against ``baseline``, one value of each per seed.

    The unit of analysis is the seed: ``candidate[i]`` and ``baseline[i]`` come from runs sharing
    seed ``i``. With oriented differences ``d_i`` (positive = candidate better; see the module
    docstring) it reports

    - ``mean_diff = mean(d)`` and a BCa bootstrap CI of it (percentile where BCa is undefined;
      ``ci_method`` records which), seeded with ``seed``; with fewer than :data:`BOOTSTRAP_MIN_N`
      pairs the Student-t interval ``mean(d) ± t_{n-1} s_d / sqrt(n)`` instead (see there why);
    - the paired t-test, two-sided: ``t = mean(d) / (s_d / sqrt(n))`` on ``n - 1`` df (identical to
      ``scipy.stats.ttest_rel`` on the oriented values); nan when n < 2 or all ``d_i`` are equal;
    - the Wilcoxon signed-rank test, two-sided: exact null distribution when n <= 50 and the
      ``|d_i|`` are distinct and nonzero, otherwise the normal approximation with zeros dropped
      (``zero_method="wilcox"``) and continuity correction; nan when all ``d_i`` are zero;
    - ``d_z = mean(d) / s_d`` (Cohen's d for paired data); nan when n < 2 or ``s_d = 0``.
    """
    confidence = _check_confidence(confidence)
    d = _oriented_diff(candidate, baseline, direction)
    n = int(d.size)
    mean_diff = float(np.mean(d))
    ci_low, ci_high, ci_method = math.nan, math.nan, "none"
    sd_diff = float(np.std(d, ddof=1)) if n >= 2 else math.nan
    if n >= BOOTSTRAP_MIN_N:
        ci_low, ci_high, ci_method = _bootstrap_interval(d, np.mean, n_resamples, confidence, seed, "bca")
    elif n >= 2:
        ci_method = "degenerate" if np.all(d == d[0]) else "t"
        summary = describe(d, confidence)
        ci_low, ci_high = (mean_diff, mean_diff) if ci_method == "degenerate" else (summary.ci_low, summary.ci_high)
    t_stat = p_t = d_z = math.nan
    if n >= 2 and not np.all(d == d[0]):
        d_z = mean_diff / float(np.std(d, ddof=1))
        res = sps.ttest_1samp(d, 0.0, alternative="two-sided")
        t_stat, p_t = float(res.statistic), float(res.pvalue)
    w_stat, p_w, w_method = _wilcoxon(d)
    return PairedComparison(
        n=n,
        mean_diff=mean_diff,
        ci_low=ci_low,
        ci_high=ci_high,
        t_stat=t_stat,
        p_t=p_t,
        w_stat=w_stat,
        p_wilcoxon=p_w,
        wilcoxon_method=w_method,
        d_z=d_z,
        direction=direction,
        ci_method=ci_method,
        sd_diff=sd_diff,
    )


def holm_bonferroni(p_values: object) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, controlling the family-wise error rate.

    With the ``m`` non-nan p-values sorted ascending, ``p_(1) <= ... <= p_(m)``:
    ``p̃_(k) = min(1, max_{j <= k} (m - j + 1) · p_(j))``. Reject ``H_(k)`` at level α iff
    ``p̃_(k) < α``. nan entries (tests that could not be run) stay nan and do not count in ``m``.
    Returns an array of the input's shape.
    """
    p = np.asarray(p_values, dtype=np.float64)
    flat = p.ravel()
    valid = ~np.isnan(flat)
    bad = flat[valid][(flat[valid] < 0.0) | (flat[valid] > 1.0)]
    if bad.size:
        raise ValueError(f"p-values must lie in [0, 1] (or be nan for tests not run); got {bad[:5].tolist()}.")
    out = np.full(flat.shape, np.nan)
    idx = np.flatnonzero(valid)
    m = idx.size
    if m:
        order = np.argsort(flat[idx], kind="stable")
        scaled = (m - np.arange(m)) * flat[idx][order]
        out[idx[order]] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out.reshape(p.shape)


def verdict(comparison_mean_diff: float, adjusted_p: float, alpha: float) -> Verdict:
    """Verdict on the claim "the candidate improves on the baseline" (``E[d] > 0``, oriented diffs).

    ``"supported"`` when ``adjusted_p < alpha`` and ``mean_diff > 0``; ``"contradicted"`` when
    ``adjusted_p < alpha`` and ``mean_diff < 0`` (significantly worse); ``"inconclusive"`` otherwise,
    including a nan p-value or mean difference. ``adjusted_p`` should be family-wise adjusted
    (e.g. by :func:`holm_bonferroni`) over all comparisons in the report.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1 (e.g. 0.05); got {alpha!r}.")
    mean_diff, p = float(comparison_mean_diff), float(adjusted_p)
    if math.isnan(p) or math.isnan(mean_diff) or not p < alpha:
        return "inconclusive"
    return "supported" if mean_diff > 0.0 else "contradicted" if mean_diff < 0.0 else "inconclusive"
