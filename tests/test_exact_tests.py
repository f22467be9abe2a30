"""Exact paired tests, the probability of improvement and the declared rule (nsync_bench.stats.exact and
.rule), against hand enumeration, scipy and closed forms."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats as sps

from nsync_bench.stats import exact
from nsync_bench.stats.exact import (
    clopper_pearson,
    exact_tail_counts,
    probability_of_improvement,
    sign_flip_test,
    signed_rank_test,
)
from nsync_bench.stats.rule import (
    exact_min_p,
    reach_message,
    resolve_test,
    rule_text,
    rule_verdict,
    seeds_to_reach,
    uses_exact,
)


def _enumerated_p(d) -> float:
    """Two-sided sign-flip p from the definition: all 2^n patterns, |sum| at least the observed one."""
    d = np.asarray(d, dtype=float)
    sums = [abs(sum(s * x for s, x in zip(signs, d, strict=True))) for signs in itertools.product([1, -1],
                                                                                                  repeat=d.size)]
    return float(np.mean(np.asarray(sums) >= abs(d.sum()) - 1e-9))


# ---------------------------------------------------------------- sign-flip permutation test


def test_sign_flip_by_hand():
    # d = 1..5, all positive: only the all-+ and all-- patterns are as extreme: 2/32.
    assert sign_flip_test([1, 2, 3, 4, 5]).p == 2 / 32 == 0.0625
    # d = (1, -2, 3), observed sum 2; the 8 pattern sums are ±6, ±4, ±2, 0, 0: six have |S| >= 2.
    assert sign_flip_test([1, -2, 3]).p == 6 / 8
    # Ten of ten positive: 2/1024 = 0.00195.
    assert sign_flip_test(np.full(10, 3.3)).p == 2 / 1024
    # Zeros change no pattern's sum: the same p as without them.
    assert sign_flip_test([0.0, 1.0, 2.0, 3.0]).p == sign_flip_test([1.0, 2.0, 3.0]).p == 2 / 8
    # A sum that is zero only up to rounding (0.1 + 0.2 - 0.3) still gives p = 1, not a spurious tail.
    assert sign_flip_test([0.1, 0.2, -0.3]).p == 1.0
    assert sign_flip_test([-2.5]).p == 1.0  # one pair: either sign, probability 1/2 each
    none = sign_flip_test([0.0, 0.0])
    assert math.isnan(none.p) and none.method == "none"


@pytest.mark.parametrize("n", [2, 3, 5, 8, 11, 13, 16])
def test_sign_flip_matches_scipy_permutation_test(n):
    d = np.random.default_rng(n).normal(0.4, 1.0, n)
    result = sign_flip_test(d)
    ref = sps.permutation_test((d,), lambda x, axis: np.sum(x, axis=axis), permutation_type="samples",
                               n_resamples=np.inf, alternative="two-sided")
    assert result.method == "exact" and result.mc_se == 0.0
    assert result.p == pytest.approx(ref.pvalue, rel=1e-12)
    if n <= 8:
        assert result.p == pytest.approx(_enumerated_p(d), rel=1e-12)


def test_meet_in_the_middle_counts_equal_the_full_matrix(monkeypatch):
    rng = np.random.default_rng(0)
    for n in (11, 12, 14):
        values = np.abs(rng.normal(1.0, 1.0, (50, n)))
        thresholds = np.abs(values.sum(axis=1)) * rng.uniform(0.0, 1.0, 50)
        middle = exact_tail_counts(values, thresholds)
        monkeypatch.setattr(exact, "_MATRIX_MAX_N", 32)
        assert np.array_equal(middle, exact_tail_counts(values, thresholds))
        monkeypatch.setattr(exact, "_MATRIX_MAX_N", 10)


def test_beyond_twenty_pairs_monte_carlo_with_its_error():
    d = np.random.default_rng(4).normal(0.3, 1.0, 24)
    mc = sign_flip_test(d, seed=3)
    full = sign_flip_test(d, exact_max_n=24)  # 2^24 patterns, still cheap by meet in the middle
    assert mc.method == "monte-carlo" and full.method == "exact"
    assert mc.mc_se == pytest.approx(math.sqrt(mc.p * (1 - mc.p) / exact.MC_RESAMPLES))
    assert abs(mc.p - full.p) < 4 * mc.mc_se  # the estimate and the exact value agree within its error
    assert mc == sign_flip_test(d, seed=3) and mc.p != sign_flip_test(d, seed=4).p  # its own seeded stream
    with pytest.raises(ValueError, match="n_resamples"):
        sign_flip_test(d, n_resamples=0)


# ---------------------------------------------------------------- Wilcoxon signed-rank


@pytest.mark.parametrize("n", [1, 3, 6, 9, 14, 20])
def test_signed_rank_matches_scipy_exact(n):
    d = np.random.default_rng(100 + n).normal(0.5, 1.0, n)
    ours = signed_rank_test(d)
    ref = sps.wilcoxon(d, method="exact")
    assert ours.method == "exact"
    assert ours.p == pytest.approx(ref.pvalue, rel=1e-12) and ours.statistic == ref.statistic


def test_signed_rank_smallest_p_is_two_over_two_to_the_n():
    for n in range(1, 12):
        assert signed_rank_test(np.arange(1.0, n + 1)).p == exact_min_p(n) == min(1.0, 2 / 2**n)


# ---------------------------------------------------------------- probability of improvement


@pytest.mark.parametrize(("k", "n"), [(0, 5), (1, 5), (3, 5), (5, 5), (6, 10), (10, 10), (7, 20)])
def test_clopper_pearson_matches_scipy_binomtest(k, n):
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    low, high = clopper_pearson(k, n)
    assert low == pytest.approx(ref.low, abs=1e-12) and high == pytest.approx(ref.high, abs=1e-12)


def test_clopper_pearson_closed_forms():
    # k = n: the lower end solves p^n = alpha/2; k = 0: the upper end solves (1 - p)^n = alpha/2.
    assert clopper_pearson(5, 5) == (pytest.approx(0.025 ** (1 / 5), rel=1e-12), 1.0)
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-12))
    with pytest.raises(ValueError):
        clopper_pearson(6, 5)


def test_probability_of_improvement_counts_wins_not_ties():
    result = probability_of_improvement([1.0, -1.0, 2.0, 0.0, 3.0])
    assert (result.share, result.wins, result.ties, result.n) == (0.6, 3, 1, 5)
    assert (result.low, result.high) == clopper_pearson(3, 5)


# ---------------------------------------------------------------- the declared rule


def test_smallest_attainable_p_and_the_seeds_an_exact_test_needs():
    """By enumeration: at n seeds the smallest p over every sign pattern of 1..n is 2/2^n, and Holm over m
    can reach alpha iff m times it is below alpha."""
    for n in range(1, 9):
        smallest = min(_enumerated_p(np.array(signs) * np.arange(1, n + 1))
                       for signs in itertools.product([1, -1], repeat=n))
        assert smallest == exact_min_p(n)
    for m in (1, 2, 3, 4, 16):
        expected = next(n for n in range(1, 30) if m * exact_min_p(n) < 0.05)
        assert seeds_to_reach(0.05, m) == expected
    assert (seeds_to_reach(0.05), seeds_to_reach(0.05, 4), seeds_to_reach(0.05, 16)) == (6, 8, 10)
    assert reach_message(5, 0.05, 4) == ("5 seeds cannot reach 0.05 with an exact test (smallest two-sided p "
                                        "2/2^5 = 0.0625); need >= 6, or >= 8 with Holm over 4")
    assert reach_message(5, 0.05, 1).endswith("need >= 6") and reach_message(6, 0.05, 1) is None
    assert reach_message(8, 0.05, 4) is None and reach_message(7, 0.05, 4) is not None


def test_resolve_test_default_switches_at_twenty_seeds():
    assert resolve_test("auto", 19) == "both" and resolve_test("auto", 20) == "t"
    assert resolve_test("permutation", 50) == "permutation"
    assert uses_exact("auto", 5) and not uses_exact("auto", 25) and not uses_exact("t", 5)
    with pytest.raises(ValueError, match="unknown test"):
        resolve_test("wilcoxon", 5)


@pytest.mark.parametrize(("mean", "p_t", "p_perm", "test", "expected"), [
    (1.0, 0.01, 0.01, "both", "supported"),
    (1.0, 0.01, 0.0625, "both", "supported (t only)"),
    (-1.0, 0.01, 0.0625, "both", "contradicted (t only)"),
    (-1.0, 0.01, 0.01, "both", "contradicted"),
    (1.0, 0.2, 0.01, "both", "inconclusive"),
    (1.0, 0.01, 0.0625, "t", "supported"),
    (1.0, 0.2, 0.01, "permutation", "supported"),
    (1.0, 0.01, 0.2, "permutation", "supported (t only)"),
    (1.0, 0.05, 0.01, "both", "inconclusive"),  # strictly below alpha
    (0.0, 0.01, 0.01, "both", "inconclusive"),
    (1.0, float("nan"), 0.01, "both", "inconclusive"),
    (1.0, 0.01, float("nan"), "both", "supported (t only)"),
])
def test_rule_verdict_truth_table(mean, p_t, p_perm, test, expected):
    assert rule_verdict(mean, p_t, p_perm, 0.05, test) == expected


def test_rule_text_states_the_rule():
    assert "below 20 seeds both" in rule_text("auto", 0.05, declared=False) and "(default)" in rule_text("auto", 0.05,
                                                                                                          False)
    assert rule_text("t", 0.01).startswith("test = t: the paired t-test") and "t only" not in rule_text("t", 0.01)
    assert "'supported (t only)'" in rule_text("both", 0.05)
