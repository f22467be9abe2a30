"""Power of the declared test for a declared effect (nsync_bench.stats.design), against closed forms, the
noncentral t and a simulation of the SD interval's coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from nsync_bench.stats.design import minimum_detectable_dz, power_at, sd_interval, seeds_needed_for
from nsync_bench.stats.power import paired_t_power, seeds_needed


def _all_same_sign(d: float, n: int) -> float:
    """P(n normal(d, 1) differences share one sign): the exact test's power where only those patterns reject."""
    return sps.norm.cdf(d) ** n + sps.norm.cdf(-d) ** n


@pytest.mark.parametrize(("d", "n", "level"), [(1.0, 6, 0.05), (1.5, 6, 0.05), (1.5, 8, 0.05 / 4)])
def test_exact_power_matches_the_closed_form(d, n, level):
    """At n = 6 and level 0.05 (and n = 8 at 0.05/4) the exact test rejects only when every difference has
    one sign (p = 2/2^n; the next p, 4/2^n, is above the level), so its power is closed-form."""
    estimate = power_at(d, n, level, "permutation")
    assert estimate.method == "simulation"
    assert abs(estimate.power - _all_same_sign(d, n)) < 3.5 * estimate.mc_se
    both = power_at(d, n, level, "both")
    assert both.power <= estimate.power  # `both` rejects a subset of what the exact test rejects


def test_unreachable_levels_have_no_power_and_an_infinite_mde():
    assert power_at(3.0, 5, 0.05, "both").method == "unreachable" and power_at(3.0, 5, 0.05, "both").power == 0.0
    assert math.isinf(minimum_detectable_dz(5, 0.05, "permutation"))
    assert math.isinf(minimum_detectable_dz(7, 0.05 / 4, "both"))
    assert math.isnan(minimum_detectable_dz(1, 0.05, "t"))


def test_t_power_is_the_noncentral_t():
    assert power_at(0.8, 12, 0.01, "t").power == paired_t_power(0.8, 12, 0.01)
    assert power_at(0.8, 25, 0.01, "auto").method == "noncentral t"  # auto = t from 20 seeds
    assert minimum_detectable_dz(25, 0.05, "auto") == minimum_detectable_dz(25, 0.05, "t")


def test_exact_mde_solves_the_closed_form():
    """n = 6, level 0.05: power(d) = Phi(d)^6 (+ a negligible lower tail) = 0.8 at d = Phi^-1(0.8^(1/6))."""
    target = float(sps.norm.ppf(0.8 ** (1 / 6)))
    slope = 6 * sps.norm.cdf(target) ** 5 * sps.norm.pdf(target)  # d power / d d at the target
    tolerance = 3 * math.sqrt(0.8 * 0.2 / 4000) / slope  # three Monte Carlo errors of the power, in d_z
    assert minimum_detectable_dz(6, 0.05, "permutation") == pytest.approx(target, abs=tolerance)


def test_exact_power_at_twenty_pairs_agrees_with_the_t_test():
    """Why the t-test's power stands in for the exact test's beyond 20 pairs: at 20 they already agree within
    the simulation's error on normal differences."""
    for d in (0.5, 0.7):
        estimate = power_at(d, 20, 0.05, "permutation")
        assert abs(estimate.power - paired_t_power(d, 20, 0.05)) < 3.5 * estimate.mc_se
    assert power_at(0.5, 21, 0.05, "permutation").method == "t approximation"


def test_seeds_needed_for_a_declared_effect():
    assert seeds_needed_for(1.0, 0.05, "t") == seeds_needed(1.0, 0.05) == 10
    # d_z = 2 at 0.05 with the exact test: 5 seeds cannot reach 0.05; at 6, power = Phi(2)^6 = 0.87 >= 0.8.
    assert _all_same_sign(2.0, 6) > 0.8 and seeds_needed_for(2.0, 0.05, "permutation") == 6
    # auto: the t-test from 20 seeds on, where d_z = 0.5 needs 34 (Cohen's table).
    assert seeds_needed_for(0.5, 0.05, "auto") == 34
    assert seeds_needed_for(0.0, 0.05, "both") is None and seeds_needed_for(float("nan"), 0.05, "t") is None
    assert seeds_needed_for(1.0, 0.05, "both") >= seeds_needed(1.0, 0.05)


def test_sd_interval_formula_and_coverage():
    low, high = sd_interval(2.0, 5)
    assert low == pytest.approx(2.0 * math.sqrt(4 / sps.chi2.ppf(0.975, 4)), rel=1e-12)
    assert high == pytest.approx(2.0 * math.sqrt(4 / sps.chi2.ppf(0.025, 4)), rel=1e-12)
    # Coverage by simulation: 20,000 samples of 5 normal values with SD 1; the interval should hold 1 in 95 %
    # of them (binomial SE 0.0015; tolerance 3.5 SE).
    samples = np.random.default_rng(0).standard_normal((20_000, 5))
    sds = samples.std(axis=1, ddof=1)
    bounds = np.array([sd_interval(s, 5) for s in sds])
    coverage = np.mean((bounds[:, 0] <= 1.0) & (bounds[:, 1] >= 1.0))
    assert coverage == pytest.approx(0.95, abs=3.5 * math.sqrt(0.95 * 0.05 / 20_000))
    assert all(math.isnan(v) for v in sd_interval(1.0, 1))
