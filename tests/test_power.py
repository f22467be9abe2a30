"""Power of the paired t-test (nsync_bench.stats.power) against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from nsync_bench.stats.power import minimum_detectable_effect, paired_t_power, seeds_needed


def test_power_matches_published_sample_sizes():
    # Cohen (1988) / G*Power, one-sample (paired) t, two-sided alpha 0.05, power 0.8:
    # d = 1 needs n = 10 (power 0.8031), d = 0.8 needs 15, d = 0.5 needs 34.
    assert paired_t_power(1.0, 10, 0.05) == pytest.approx(0.8031, abs=5e-5)
    assert seeds_needed(1.0, 0.05) == 10
    assert seeds_needed(0.8, 0.05) == 15
    assert seeds_needed(0.5, 0.05) == 34
    assert paired_t_power(1.0, 9, 0.05) < 0.8 <= paired_t_power(1.0, 10, 0.05)


def _trapezoid(y, x):
    """The trapezoid rule (numpy.trapezoid needs NumPy 2; the project allows 1.25)."""
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)


def test_power_hand_derived_df1():
    """n = 2 (df = 1): T = (Z + nc) / |W| with Z, W standard normal, so
    P(T > c) = E_W[Phi(nc - c|W|)] = 2 * int_0^inf phi(w) Phi(nc - c w) dw, evaluated here on a fine grid
    with the trapezoid rule (no scipy.stats.nct involved)."""
    w = np.linspace(0.0, 12.0, 400_001)
    phi = np.exp(-w**2 / 2) / math.sqrt(2 * math.pi)
    c = 12.706204736174707  # t_{0.975, 1}
    for d in (1.0, 5.0, 11.5):  # 11.5: scipy's nct alone returns nan in the lower tail here
        nc = math.sqrt(2) * d
        upper = 2 * _trapezoid(phi * sps.norm.cdf(nc - c * w), w)
        lower = 2 * _trapezoid(phi * sps.norm.cdf(-nc - c * w), w)
        assert paired_t_power(d, 2, 0.05) == pytest.approx(upper + lower, rel=1e-6)


def test_mde_reaches_target_power_and_normal_limit():
    for n in (2, 3, 5, 10, 30):
        d = minimum_detectable_effect(n, 0.05)
        assert paired_t_power(d, n, 0.05) == pytest.approx(0.8, abs=1e-9)
        z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)
        assert d > z / math.sqrt(n)  # the t-test needs more than the normal approximation says
    # Large n: the normal approximation (z_{1-a/2} + z_{power}) / sqrt(n) within 0.2 %.
    assert minimum_detectable_effect(2000, 0.05) == pytest.approx(2.8015852 / math.sqrt(2000), rel=2e-3)
    # A stricter (Holm/Bonferroni) level needs a larger effect.
    assert minimum_detectable_effect(3, 0.05 / 24) > minimum_detectable_effect(3, 0.05)


def test_mde_monte_carlo():
    """Simulated paired t-tests at the MDE reject about 80 % of the time."""
    n, alpha = 5, 0.05
    d = minimum_detectable_effect(n, alpha)
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((40_000, n)) + d
    p = sps.ttest_1samp(samples, 0.0, axis=1).pvalue
    assert np.mean(p < alpha) == pytest.approx(0.8, abs=0.01)


def test_edge_cases():
    assert math.isnan(minimum_detectable_effect(1, 0.05))
    assert math.isnan(paired_t_power(1.0, 1, 0.05))
    assert paired_t_power(0.0, 5, 0.05) == pytest.approx(0.05)
    assert seeds_needed(0.0, 0.05) is None and seeds_needed(float("nan"), 0.05) is None
    assert seeds_needed(-1.0, 0.05) == 10  # two-sided: the sign does not matter
    assert seeds_needed(1e-4, 0.05) is None  # beyond MAX_SEEDS
    with pytest.raises(ValueError, match="alpha"):
        minimum_detectable_effect(5, 1.5)
    with pytest.raises(ValueError, match="power"):
        minimum_detectable_effect(5, 0.05, power=0.01)
