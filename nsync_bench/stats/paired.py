"""Paired statistics for comparing methods across shared seeds.

The unit of analysis is the *seed* (one value per run, e.g. a run's FID): under common random
numbers (docs/architecture.md, "Shared seeds") the candidate and the baseline trained with seed ``s`` form a
pair, so every test here is a paired test on per-seed differences. Pure functions on float64 numpy
arrays; no I/O; every stochastic function takes an explicit ``seed``.

Differences are *oriented* so that a positive value means the candidate is better:
``d = baseline - candidate`` for lower-is-better metrics (FID, KID, CMMD) and
``d = candidate - baseline`` for higher-is-better metrics (CSD). The claim under test is always
"the candidate improves on the baseline", i.e. ``E[d] > 0``. A declared transform (``log``) is
applied to both sides before the difference: the log of a ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

from nsync_bench.stats.bootstrap import _as_1d, _check_confidence, bootstrap_ci, bootstrap_interval
from nsync_bench.stats.exact import ExactTest, probability_of_improvement, sign_flip_test, signed_rank_test

__all__ = ["BOOTSTRAP_MIN_N", "TRANSFORMS", "PairedComparison", "Summary", "bootstrap_ci", "describe",
           "holm_bonferroni", "paired_comparison", "transform_values"]

Direction = Literal["lower", "higher"]
TRANSFORMS = ("none", "log")

# Below this many pairs the comparison CI is the paired t-interval, not a BCa bootstrap one: the
# smallest n of the grid 10, 15, 20, 25, 30, 40 from which the simulated coverage of a nominal 95 % BCa
# interval of the mean is at least 93 % (lower 95 % bound of the simulation) both for normal
# differences and for a two-point mixture like the toy control's bimodal outcome. Normal: 0.892 at
# n = 10, 0.919 at 15, 0.928 at 20, 0.930 at 25, 0.934 at 30; the mixture 0.96 throughout
# (nsync_bench.stats.coverage has the details; tests/test_coverage.py reruns the simulation). The
# t-interval is exact under normality and agrees with the paired t-test.
BOOTSTRAP_MIN_N = 30


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


@dataclass(frozen=True)
class PairedComparison:
    """Paired comparison of a candidate and a baseline across seeds; positive diff = candidate better.

    ``ci_method`` says how the CI was made: ``"bca"``, ``"percentile"`` (BCa undefined),
    ``"t"`` (fewer than :data:`BOOTSTRAP_MIN_N` pairs: the paired t-interval, no bootstrap),
    ``"degenerate"`` (all differences equal) or ``"none"`` (n < 2, CI nan).
    ``sd_diff`` is the sample standard deviation (ddof 1) of the differences (nan for n < 2).
    ``w_stat`` is min(W+, W-); the sign of the effect is in ``mean_diff``. ``p_perm`` is the sign-flip
    permutation test's (``perm_method`` "exact" or "monte-carlo" with error ``perm_mc_se``).
    ``prob_improvement`` = wins / n with its Clopper-Pearson interval ``[pi_low, pi_high]``.
    All differences are on the ``transform``'s scale.
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
    p_perm: float = math.nan
    perm_method: str = "none"
    perm_mc_se: float = math.nan
    prob_improvement: float = math.nan
    pi_low: float = math.nan
    pi_high: float = math.nan
    wins: int = 0
    ties: int = 0
    transform: str = "none"


def transform_values(values: object, transform: str, name: str = "values") -> np.ndarray:
    """``values`` on the declared analysis scale: unchanged (``none``) or their natural log (``log``,
    every value must be positive)."""
    x = _as_1d(values, name)
    if transform == "none":
        return x
    if transform != "log":
        raise ValueError(f"unknown transform {transform!r}; valid transforms: {', '.join(TRANSFORMS)}.")
    bad = np.flatnonzero(x <= 0.0)
    if bad.size:
        raise ValueError(f"the log transform needs positive values; {name} has {float(x[bad[0]])!r} at position "
                         f"{int(bad[0])}. Declare transform \"none\" for this metric, or drop those runs.")
    return np.log(x)


def _oriented_diff(candidate: object, baseline: object, direction: str, transform: str = "none") -> np.ndarray:
    if direction not in ("lower", "higher"):
        raise ValueError(
            f"direction must be 'lower' (lower is better, e.g. FID) or 'higher' (e.g. CSD); got {direction!r}."
        )
    cand = transform_values(candidate, transform, "candidate")
    base = transform_values(baseline, transform, "baseline")
    if cand.size != base.size:
        raise ValueError(
            f"candidate has {cand.size} values but baseline has {base.size}; pair them by seed "
            "and keep only the seeds both methods finished."
        )
    return base - cand if direction == "lower" else cand - base


def paired_comparison(
    candidate: object,
    baseline: object,
    *,
    direction: Direction,
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int = 0,
    transform: str = "none",
    permutation: bool = True,
) -> PairedComparison:
    """Paired comparison of ``candidate`` against ``baseline``, one value of each per seed.

    The unit of analysis is the seed: ``candidate[i]`` and ``baseline[i]`` come from runs sharing
    seed ``i``. With oriented differences ``d_i`` (positive = candidate better; see the module
    docstring; on the log scale when ``transform="log"``) it reports

    - ``mean_diff = mean(d)`` and its CI: the Student-t interval ``mean(d) ± t_{n-1} s_d / sqrt(n)``
      below :data:`BOOTSTRAP_MIN_N` pairs (see there why), a BCa bootstrap interval seeded with
      ``seed`` from there on (percentile where BCa is undefined; ``ci_method`` records which);
    - the paired t-test, two-sided: ``t = mean(d) / (s_d / sqrt(n))`` on ``n - 1`` df (identical to
      ``scipy.stats.ttest_rel`` on the oriented values); nan when n < 2 or all ``d_i`` are equal;
    - the exact sign-flip permutation test and the Wilcoxon signed-rank test, two-sided
      (nsync_bench.stats.exact: every sign pattern up to 20 pairs); nan when all ``d_i`` are zero;
    - ``d_z = mean(d) / s_d`` (Cohen's d for paired data); nan when n < 2 or ``s_d = 0``;
    - the probability of improvement, the share of seeds with ``d_i > 0``, and its exact interval.

    ``permutation=False`` skips the permutation test (p nan, method "none"): for the per-prompt
    analysis, whose hundreds of pairs are not exchangeable units anyway.
    """
    confidence = _check_confidence(confidence)
    d = _oriented_diff(candidate, baseline, direction, transform)
    n = int(d.size)
    mean_diff = float(np.mean(d))
    ci_low, ci_high, ci_method = math.nan, math.nan, "none"
    sd_diff = float(np.std(d, ddof=1)) if n >= 2 else math.nan
    if n >= BOOTSTRAP_MIN_N:
        ci_low, ci_high, ci_method = bootstrap_interval(d, np.mean, n_resamples, confidence, seed, "bca")
    elif n >= 2:
        ci_method = "degenerate" if np.all(d == d[0]) else "t"
        summary = describe(d, confidence)
        ci_low, ci_high = (mean_diff, mean_diff) if ci_method == "degenerate" else (summary.ci_low, summary.ci_high)
    t_stat = p_t = d_z = math.nan
    if n >= 2 and not np.all(d == d[0]):
        d_z = mean_diff / float(np.std(d, ddof=1))
        res = sps.ttest_1samp(d, 0.0, alternative="two-sided")
        t_stat, p_t = float(res.statistic), float(res.pvalue)
    wilcoxon = signed_rank_test(d)
    perm = sign_flip_test(d, seed=seed) if permutation else ExactTest(math.nan, "none", math.nan)
    improvement = probability_of_improvement(d, confidence)
    return PairedComparison(
        n=n,
        mean_diff=mean_diff,
        ci_low=ci_low,
        ci_high=ci_high,
        t_stat=t_stat,
        p_t=p_t,
        w_stat=wilcoxon.statistic,
        p_wilcoxon=wilcoxon.p,
        wilcoxon_method=wilcoxon.method,
        d_z=d_z,
        direction=direction,
        ci_method=ci_method,
        sd_diff=sd_diff,
        p_perm=perm.p,
        perm_method=perm.method,
        perm_mc_se=perm.mc_se,
        prob_improvement=improvement.share,
        pi_low=improvement.low,
        pi_high=improvement.high,
        wins=improvement.wins,
        ties=improvement.ties,
        transform=transform,
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
