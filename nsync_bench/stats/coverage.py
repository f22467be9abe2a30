"""How often a nominal 95 % interval of the mean difference covers the truth, by simulation.

The paired comparison switches from the Student-t interval to the BCa bootstrap at
:data:`nsync_bench.stats.paired.BOOTSTRAP_MIN_N` pairs; this module is the evidence for that n.
A switch is worth making only where the bootstrap covers at least 93 % of the time both for
normal differences and for the outcome this benchmark actually meets at few seeds: a two-point
mixture like the toy world's positive control, where 6 of 10 seeds' tokens converge (FID
differences near 2,500) and 4 do not (near 600; within-cluster SDs about 7 % of the gap).

"At least 93 %" is read conservatively: the simulated coverage's lower 95 % confidence bound
(estimate - 1.96 standard errors) must reach it, so Monte Carlo noise cannot move the switch
earlier. Measured (2,000 bootstrap resamples per interval): for normal differences 0.892 at n = 10,
0.919 at 15, 0.928 at 20 (4,000 data sets each, seed 0), 0.9301 ± 0.0020 at 25 and
0.9343 ± 0.0020 at 30 (16,000 data sets, seed 7); the mixture 0.957-0.966 at every n from 10 to 40.
So the switch is at n = 30.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats as sps

from nsync_bench.seeding import numpy_rng
from nsync_bench.stats.bootstrap import bootstrap_interval

__all__ = ["DISTRIBUTIONS", "SWITCH_COVERAGE", "bootstrap_switch_n", "covers", "interval_coverage"]

SWITCH_COVERAGE = 0.93
MIXTURE_SHARE = 0.6  # share of seeds that converge (6 of 10 in the toy control)
MIXTURE_NOISE = 0.07  # within-cluster SD as a share of the gap between the clusters

Sampler = Callable[[np.random.Generator, int], np.ndarray]


def _normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n)


def _toy_mixture(rng: np.random.Generator, n: int) -> np.ndarray:
    return (rng.random(n) < MIXTURE_SHARE).astype(np.float64) + MIXTURE_NOISE * rng.standard_normal(n)


# name -> (sampler, true mean)
DISTRIBUTIONS: dict[str, tuple[Sampler, float]] = {
    "normal": (_normal, 0.0),
    "toy-mixture": (_toy_mixture, MIXTURE_SHARE),
}


def interval_coverage(n: int, distribution: str, *, method: str = "bca", data_sets: int = 2000,
                      n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Share of ``data_sets`` simulated samples of size n whose interval (``"bca"`` bootstrap or the
    Student-t ``"t"``) covers the true mean, and its binomial standard error. Data come from the stream
    ``(seed, "stats", "coverage", distribution, n)``; resample ``i`` of the bootstrap is seeded ``i``."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}; valid: {', '.join(DISTRIBUTIONS)}.")
    if method not in ("bca", "t"):
        raise ValueError(f"method must be 'bca' or 't'; got {method!r}.")
    sampler, truth = DISTRIBUTIONS[distribution]
    rng = numpy_rng(seed, "stats", "coverage", distribution, n)
    t_crit = float(sps.t.ppf(0.5 + confidence / 2.0, n - 1))
    hits = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # BCa falling back to percentile is counted as is
        for i in range(data_sets):
            x = sampler(rng, n)
            if method == "bca":
                low, high, _ = bootstrap_interval(x, np.mean, n_resamples, confidence, i, "bca")
            else:
                half = t_crit * float(np.std(x, ddof=1)) / math.sqrt(n)
                low, high = float(np.mean(x)) - half, float(np.mean(x)) + half
            hits += low <= truth <= high
    share = hits / data_sets
    return share, math.sqrt(share * (1.0 - share) / data_sets)


def covers(coverage: float, se: float, threshold: float = SWITCH_COVERAGE) -> bool:
    """Whether a simulated coverage reaches ``threshold`` beyond Monte Carlo doubt (lower 95 % bound)."""
    return coverage - 1.96 * se >= threshold


def bootstrap_switch_n(grid: tuple[int, ...] = (10, 15, 20, 25, 30, 40), *, threshold: float = SWITCH_COVERAGE,
                       data_sets: int = 2000, seed: int = 0) -> int | None:
    """The smallest n of ``grid`` from which on (at every larger grid n too) BCa covers at least
    ``threshold`` for every distribution (:func:`covers`); None when no n of the grid does (keep the
    t-interval)."""
    ok = [all(covers(*interval_coverage(n, name, data_sets=data_sets, seed=seed), threshold)
              for name in DISTRIBUTIONS) for n in grid]
    for i, n in enumerate(grid):
        if all(ok[i:]):
            return n
    return None
