"""Power of the declared test for a declared effect: the minimum detectable effect and the seeds needed.

Power belongs to the plan, not to the data: it is computed for the *smallest effect of interest* a
claims file declares (nsync_bench.report.claims), never for the observed effect (post-hoc power is
biased upward after a significant result and says nothing after a null). Differences are modelled as
normal with mean ``d_z`` and SD 1 (a raw effect is divided by an SD first: the observed SD of the
paired differences, whose uncertainty :func:`sd_interval` states).

* ``t``: the noncentral t distribution (nsync_bench.stats.power), exact under normality.
* ``permutation`` and ``both``: simulated. ``draws`` samples of n standard normal differences from
  the stream ``(seed, "stats", "power", n)``, shifted by ``d_z``; each is tested exactly (every sign
  pattern, nsync_bench.stats.exact) and, for ``both``, also with the t-test; the power is the share
  rejected, with its binomial Monte Carlo error. The same draws serve every ``d_z`` (common random
  numbers), so the power is a monotone step function of ``d_z`` that bisection can solve. When
  ``2 / 2^n`` is not below the level the exact test can never reject: power 0, MDE infinite. Above
  :data:`~nsync_bench.stats.exact.EXACT_MAX_N` pairs the t-test's power stands in for the exact
  test's (their power on normal differences agrees within the simulation's error there; tested).

Levels: a family of m tests is planned at ``alpha / m``, the first step of Holm, which a lone real
effect among nulls must clear.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from nsync_bench.seeding import numpy_rng
from nsync_bench.stats.exact import EXACT_MAX_N, REL_TOL, exact_tail_counts
from nsync_bench.stats.power import MAX_SEEDS, minimum_detectable_effect, paired_t_power
from nsync_bench.stats.power import seeds_needed as t_seeds_needed
from nsync_bench.stats.rule import exact_min_p, resolve_test, seeds_to_reach

__all__ = ["DRAWS", "PowerEstimate", "minimum_detectable_dz", "power_at", "sd_interval", "seeds_needed_for"]

DRAWS = 4000  # Monte Carlo error of a simulated power of 0.8: sqrt(0.8 * 0.2 / 4000) = 0.0063
_MDE_XTOL = 5e-3  # d_z units: below what 4,000 draws resolve (power error 0.006 ~ d_z 0.01)


@dataclass(frozen=True)
class PowerEstimate:
    power: float
    mc_se: float  # 0 where computed exactly
    method: str  # "noncentral t" | "simulation" | "unreachable" | "t approximation" | "none"


def sd_interval(sd: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Interval for the SD behind a sample SD of n normal values: ``s sqrt((n-1) / χ²_{n-1, 1-α/2})`` to
    ``s sqrt((n-1) / χ²_{n-1, α/2})``. nan for n < 2 or a nan SD."""
    if n < 2 or not math.isfinite(sd):
        return math.nan, math.nan
    alpha = 1.0 - confidence
    scale = sd * math.sqrt(n - 1)
    return (scale / math.sqrt(float(sps.chi2.ppf(1.0 - alpha / 2.0, n - 1))),
            scale / math.sqrt(float(sps.chi2.ppf(alpha / 2.0, n - 1))))


@functools.lru_cache(maxsize=64)
def _draws(n: int, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standard normal samples (draws x n), their row means and SDs: shared by every d_z (CRN)."""
    z = numpy_rng(seed, "stats", "power", n).standard_normal((draws, n))
    z.setflags(write=False)
    return z, z.mean(axis=1), z.std(axis=1, ddof=1)


def _simulate(effect: float, n: int, level: float, test: str, draws: int, seed: int) -> PowerEstimate:
    z, mean, sd = _draws(n, draws, seed)
    d = z + effect
    total = np.abs(d).sum(axis=1)
    threshold = np.abs(d.sum(axis=1)) - REL_TOL * total
    p_perm = np.minimum(1.0, 2.0 * exact_tail_counts(np.abs(d), threshold) / 2.0**n)
    reject = p_perm < level
    if test == "both":
        t = (mean + effect) / (sd / math.sqrt(n))
        reject &= 2.0 * sps.t.sf(np.abs(t), n - 1) < level
    power = float(np.mean(reject))
    return PowerEstimate(power, math.sqrt(power * (1.0 - power) / draws), "simulation")


def power_at(effect_dz: float, n: int, level: float, test: str, *, draws: int = DRAWS,
               seed: int = 0) -> PowerEstimate:
    """Power of the two-sided ``test`` ("t", "permutation", "both" or "auto") at ``level`` with n pairs
    for a true standardised effect ``effect_dz`` (see the module docstring)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1; got {level!r}.")
    if n < 2 or math.isnan(effect_dz):
        return PowerEstimate(math.nan, math.nan, "none")
    test = resolve_test(test, n)
    if test == "t":
        return PowerEstimate(paired_t_power(effect_dz, n, level), 0.0, "noncentral t")
    if exact_min_p(n) >= level:
        return PowerEstimate(0.0, 0.0, "unreachable")
    if n > EXACT_MAX_N:
        return PowerEstimate(paired_t_power(effect_dz, n, level), 0.0, "t approximation")
    return _simulate(abs(float(effect_dz)), n, level, test, draws, seed)


@functools.lru_cache(maxsize=256)
def minimum_detectable_dz(n: int, level: float, test: str, power: float = 0.8, *, draws: int = DRAWS,
                          seed: int = 0) -> float:
    """The smallest d_z that ``test`` detects with probability ``power`` at ``level`` with n pairs;
    inf where the exact test cannot reach the level, nan for n < 2."""
    if n < 2:
        return math.nan
    resolved = resolve_test(test, n)
    if resolved == "t" or n > EXACT_MAX_N:
        return minimum_detectable_effect(n, level, power)
    if exact_min_p(n) >= level:
        return math.inf
    low, high = 0.0, 1.0
    while power_at(high, n, level, resolved, draws=draws, seed=seed).power < power:
        low, high = high, high * 2.0
        if high > 1e3:  # the draws cannot get there (never happens for a reachable level)
            return math.inf
    while high - low > _MDE_XTOL:
        middle = (low + high) / 2.0
        if power_at(middle, n, level, resolved, draws=draws, seed=seed).power >= power:
            high = middle
        else:
            low = middle
    return high


def seeds_needed_for(effect_dz: float, level: float, test: str, power: float = 0.8, *, draws: int = DRAWS,
                     seed: int = 0, max_n: int = MAX_SEEDS) -> int | None:
    """The fewest pairs at which ``test`` (resolved per n for "auto") detects ``effect_dz`` with
    ``power`` at ``level``; None for a zero or nan effect or beyond ``max_n``."""
    d = abs(float(effect_dz))
    if math.isnan(d) or d == 0.0:
        return None
    start = t_seeds_needed(d, level, power, max_n)  # no exact test beats the t-test on normal data
    if start is None:
        return None
    n = max(start, 2)
    while n <= max_n:
        resolved = resolve_test(test, n)
        if resolved != "t":
            n = max(n, seeds_to_reach(level))
        if power_at(d, n, level, resolved, draws=draws, seed=seed).power >= power:
            return n
        n += 1
    return None
