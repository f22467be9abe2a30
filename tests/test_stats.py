"""nsync_bench.stats.paired, tested three ways: hand-computed values, agreement with scipy or a reference
written here from the definition, and invariants (determinism, monotonicity, orientation)."""

import itertools
import math
import warnings

import numpy as np
import pytest
import scipy.stats as sps

from nsync_bench.stats.paired import (
    PairedComparison,
    Summary,
    bootstrap_ci,
    describe,
    holm_bonferroni,
    paired_comparison,
)
from nsync_bench.stats.rule import rule_verdict

# ---------------------------------------------------------------- describe


def _t3_cdf(t: float) -> float:
    """Closed-form CDF of Student's t with 3 df: 1/2 + (u / (1 + u^2) + arctan u) / pi, u = t / sqrt 3."""
    u = t / math.sqrt(3.0)
    return 0.5 + (u / (1.0 + u * u) + math.atan(u)) / math.pi


def test_describe_hand_computation():
    # t_{0.975, 3}: solved to 40 digits with mpmath; 3.182446305284263 (an often-quoted value) is off
    # by 5.5e-13. The closed-form CDF above confirms it without scipy.
    t975_3 = 3.1824463052837096
    assert _t3_cdf(t975_3) == pytest.approx(0.975, abs=1e-15)
    s = describe([1.0, 2.0, 3.0, 4.0])
    assert isinstance(s, Summary)
    assert s.n == 4
    assert s.confidence == 0.95
    assert s.mean == 2.5
    assert s.std == pytest.approx(math.sqrt(5.0 / 3.0), rel=1e-15)  # sum of squares 5, ddof=1
    assert s.std == pytest.approx(1.2909944487358056, rel=1e-15)
    half = t975_3 * math.sqrt(5.0 / 3.0) / 2.0
    assert s.ci_low == pytest.approx(2.5 - half, rel=1e-13)
    assert s.ci_high == pytest.approx(2.5 + half, rel=1e-13)
    assert s.ci_low == pytest.approx(0.4457397432394794, rel=1e-13)


@pytest.mark.parametrize("n", [2, 3, 7, 40])
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_describe_matches_scipy_t_interval(n, confidence):
    x = np.random.default_rng(n).normal(3.0, 2.0, n)
    s = describe(x, confidence=confidence)
    low, high = sps.t.interval(confidence, n - 1, loc=np.mean(x), scale=sps.sem(x))
    assert s.ci_low == pytest.approx(low, rel=1e-12)
    assert s.ci_high == pytest.approx(high, rel=1e-12)
    assert s.std == pytest.approx(np.std(x, ddof=1), rel=1e-14)


def test_describe_edge_cases():
    s = describe([4.0])
    assert s.mean == 4.0 and s.n == 1
    assert math.isnan(s.std) and math.isnan(s.ci_low) and math.isnan(s.ci_high)
    with pytest.raises(ValueError, match="at least 1"):
        describe([])
    with pytest.raises(ValueError, match="non-finite"):
        describe([1.0, np.nan])
    with pytest.raises(ValueError, match="one-dimensional"):
        describe([[1.0, 2.0]])
    with pytest.raises(ValueError, match="confidence"):
        describe([1.0, 2.0], confidence=95)


# ---------------------------------------------------------------- paired t-test, d_z, direction

DIFFS_1_TO_5 = np.arange(1.0, 6.0)


def test_paired_t_hand_computation():
    # d = 1..5: mean 3, s_d = sqrt(2.5), se = sqrt(0.5), t = 3 sqrt 2. Two-sided p with 4 df in
    # closed form: I_{4/(4+t^2)}(2, 1/2) = 1 - I_{9/11}(1/2, 2) = 1 - 36 / (11 sqrt 11).
    # (0.013236665 sometimes quoted for this case is wrong in the 6th digit.)
    p_hand = 1.0 - 36.0 / (11.0 * math.sqrt(11.0))
    assert p_hand == pytest.approx(0.013235599563682690, rel=1e-12)
    assert sps.ttest_1samp(DIFFS_1_TO_5, 0.0).pvalue == pytest.approx(p_hand, rel=1e-12)  # cross-check only
    c = paired_comparison(np.zeros(5), DIFFS_1_TO_5, direction="lower")  # candidate lower = better
    assert c.n == 5
    assert c.mean_diff == 3.0
    assert c.t_stat == pytest.approx(3.0 * math.sqrt(2.0), rel=1e-14)
    assert c.t_stat == pytest.approx(4.242640687119285, rel=1e-14)
    assert c.p_t == pytest.approx(0.013235599563682690, rel=1e-12)
    assert c.d_z == pytest.approx(3.0 / math.sqrt(2.5), rel=1e-14)
    assert c.d_z == pytest.approx(1.8973665961010275, rel=1e-14)


@pytest.mark.parametrize("direction", ["lower", "higher"])
def test_paired_t_matches_ttest_rel(direction):
    rng = np.random.default_rng(7)
    baseline = rng.normal(30.0, 3.0, 8)
    candidate = baseline + rng.normal(-1.0, 1.5, 8)
    c = paired_comparison(candidate, baseline, direction=direction)
    better, worse = (baseline, candidate) if direction == "lower" else (candidate, baseline)
    ref = sps.ttest_rel(better, worse)  # oriented so positive = candidate better
    assert c.t_stat == pytest.approx(ref.statistic, rel=1e-12)
    assert c.p_t == pytest.approx(ref.pvalue, rel=1e-12)
    # The other orientation of ttest_rel gives the same p and the opposite t.
    flipped = sps.ttest_rel(worse, better)
    assert c.p_t == pytest.approx(flipped.pvalue, rel=1e-12)
    assert c.t_stat == pytest.approx(-flipped.statistic, rel=1e-12)
    assert np.sign(c.t_stat) == np.sign(c.mean_diff) == np.sign(c.d_z)


def test_direction_orientation():
    baseline = np.array([30.0, 31.0, 29.5, 30.5])
    candidate = baseline - np.array([1.0, 2.0, 0.5, 1.5])  # lower FID: candidate is better
    low = paired_comparison(candidate, baseline, direction="lower")
    assert low.mean_diff == pytest.approx(1.25)
    assert low.direction == "lower"
    high = paired_comparison(candidate, baseline, direction="higher")  # same numbers read as CSD: worse
    assert high.mean_diff == pytest.approx(-1.25)
    assert high.t_stat == pytest.approx(-low.t_stat)
    assert high.p_t == pytest.approx(low.p_t)
    assert high.p_wilcoxon == pytest.approx(low.p_wilcoxon)
    assert (high.ci_low, high.ci_high) == pytest.approx((-low.ci_high, -low.ci_low), abs=1e-12)
    assert low.ci_low <= low.mean_diff <= low.ci_high


def test_paired_comparison_edge_cases():
    same = paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], direction="lower")
    assert same.mean_diff == 0.0
    assert math.isnan(same.t_stat) and math.isnan(same.p_t) and math.isnan(same.d_z)
    assert math.isnan(same.p_wilcoxon) and same.wilcoxon_method == "none"
    assert (same.ci_low, same.ci_high, same.ci_method) == (0.0, 0.0, "degenerate")
    shift = paired_comparison([1.0, 2.0, 3.0], [2.0, 3.0, 4.0], direction="lower")  # all diffs = 1
    assert math.isnan(shift.t_stat) and math.isnan(shift.d_z)
    assert (shift.ci_low, shift.ci_high) == (1.0, 1.0)
    one = paired_comparison([1.0], [2.0], direction="lower")
    assert one.n == 1 and one.mean_diff == 1.0
    assert math.isnan(one.ci_low) and one.ci_method == "none" and math.isnan(one.t_stat)
    assert one.p_wilcoxon == 1.0  # exact: the single sign is + or - with probability 1/2 each
    two = paired_comparison([1.0, 2.0], [2.0, 4.0], direction="lower")  # below BOOTSTRAP_MIN_N: no bootstrap
    assert two.ci_method == "t"
    assert (two.ci_low, two.ci_high) == pytest.approx((1.5 - 12.706204736 * 0.5, 1.5 + 12.706204736 * 0.5))
    with pytest.raises(ValueError, match="pair them by seed"):
        paired_comparison([1.0, 2.0], [1.0], direction="lower")
    with pytest.raises(ValueError, match="non-finite"):
        paired_comparison([1.0, np.inf], [1.0, 2.0], direction="lower")
    with pytest.raises(ValueError, match="direction"):
        paired_comparison([1.0], [1.0], direction="smaller")
    with pytest.raises(ValueError, match="at least 1"):
        paired_comparison([], [], direction="lower")


# ---------------------------------------------------------------- Wilcoxon


def _exact_wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided exact p by enumerating all 2^n sign patterns (distinct, nonzero |d| assumed)."""
    ranks = sps.rankdata(np.abs(d))
    w_obs = ranks[d > 0].sum()
    null = np.array([sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=d.size)])
    return min(1.0, 2.0 * min(np.mean(null <= w_obs), np.mean(null >= w_obs)))


def test_wilcoxon_exact_all_positive():
    c = paired_comparison(np.zeros(6), np.arange(1.0, 7.0), direction="lower")
    assert c.wilcoxon_method == "exact"
    assert c.w_stat == 0.0
    assert c.p_wilcoxon == 2.0 / 2**6 == 0.03125  # only all-+ and all-- are as extreme


def test_wilcoxon_exact_matches_scipy_and_enumeration():
    d = np.array([0.8, -0.3, 1.7, 2.2, -1.1, 0.5])
    c = paired_comparison(d, np.zeros(6), direction="higher")
    assert c.wilcoxon_method == "exact"
    ref = sps.wilcoxon(d, method="exact")
    assert c.w_stat == ref.statistic == 5.0  # ranks of the negatives -0.3, -1.1: 1 + 4
    assert c.p_wilcoxon == pytest.approx(ref.pvalue, rel=1e-12)
    assert c.p_wilcoxon == pytest.approx(_exact_wilcoxon_p(d), rel=1e-12)
    assert c.p_wilcoxon == pytest.approx(20 / 64, rel=1e-12)  # 10 of 64 rank subsets sum to <= 5, doubled


def _signed_rank_p_by_enumeration(d: np.ndarray) -> float:
    """Exact conditional two-sided p with midranks for ties and zeros dropped: every sign pattern of the
    ranks, counting |sum of signed ranks| >= the observed one (written from the definition)."""
    d = d[d != 0]
    ranks = sps.rankdata(np.abs(d))
    observed = abs(float(np.sum(np.sign(d) * ranks)))
    sums = [abs(sum(r * s for r, s in zip(ranks, signs, strict=True)))
            for signs in itertools.product([1, -1], repeat=d.size)]
    return float(np.mean(np.asarray(sums) >= observed - 1e-9))


@pytest.mark.parametrize(
    "d",
    [
        np.array([1.0, 1.0, 2.0, -3.0, 4.0, 5.0]),  # tied |d|
        np.array([0.0, 1.0, 2.0, -3.0, 4.0, 5.0]),  # a zero
        np.array([2.0, -2.0, 2.0, 1.0, -1.0, 3.0, 3.0]),  # ties of both signs
    ],
)
def test_wilcoxon_is_exact_with_ties_and_zeros_up_to_twenty_pairs(d):
    """Ties and zeros no longer fall back to the normal approximation at few seeds: the exact conditional
    distribution of the midranks, checked against an enumeration and scipy's permutation test on the ranks."""
    c = paired_comparison(d, np.zeros(d.size), direction="higher")
    assert c.wilcoxon_method == "exact"
    assert c.p_wilcoxon == pytest.approx(_signed_rank_p_by_enumeration(d), rel=1e-12)
    nonzero = d[d != 0]
    signed = np.sign(nonzero) * sps.rankdata(np.abs(nonzero))
    ref = sps.permutation_test((signed,), np.sum, permutation_type="samples", n_resamples=np.inf,
                               alternative="two-sided")
    assert c.p_wilcoxon == pytest.approx(ref.pvalue, rel=1e-12)
    ranks = sps.rankdata(np.abs(nonzero))
    w_plus = ranks[nonzero > 0].sum()
    assert c.w_stat == min(w_plus, ranks.sum() - w_plus)


def test_wilcoxon_beyond_twenty_pairs_is_scipys():
    d = np.random.default_rng(3).normal(0.3, 1.0, 60)  # n > 50: the normal approximation
    c = paired_comparison(d, np.zeros(d.size), direction="higher")
    assert c.wilcoxon_method == "asymptotic"
    ref = sps.wilcoxon(d, zero_method="wilcox", correction=True, method="asymptotic")
    assert c.w_stat == ref.statistic and c.p_wilcoxon == pytest.approx(ref.pvalue, rel=1e-12)
    d = np.random.default_rng(4).normal(0.3, 1.0, 30)  # 20 < n <= 50, no ties: scipy's exact distribution
    c = paired_comparison(d, np.zeros(d.size), direction="higher")
    assert c.wilcoxon_method == "exact"
    assert c.p_wilcoxon == pytest.approx(sps.wilcoxon(d, method="exact").pvalue, rel=1e-12)


# ---------------------------------------------------------------- Holm


def _holm_by_definition(p):
    """p~_i = min(1, max over p_j <= p_i of (m - rank_j + 1) p_j), nan excluded from m."""
    p = np.asarray(p, dtype=float)
    valid = [i for i in range(p.size) if not np.isnan(p[i])]
    m = len(valid)
    ranked = sorted(valid, key=lambda i: p[i])
    rank = {i: k + 1 for k, i in enumerate(ranked)}
    out = np.full(p.size, np.nan)
    for i in valid:
        out[i] = min(1.0, max((m - rank[j] + 1) * p[j] for j in valid if p[j] <= p[i]))
    return out


def test_holm_hand_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    adj = holm_bonferroni([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02], rtol=1e-14)


def test_holm_nan_handling():
    adj = holm_bonferroni([0.01, np.nan, 0.04])
    assert np.isnan(adj[1])
    np.testing.assert_allclose(adj[[0, 2]], [0.02, 0.04], rtol=1e-14)  # m = 2, not 3
    assert np.all(np.isnan(holm_bonferroni([np.nan, np.nan])))
    assert holm_bonferroni([]).shape == (0,)
    np.testing.assert_allclose(holm_bonferroni([0.5, 0.6, 0.7]), [1.0, 1.0, 1.0])  # capped
    assert holm_bonferroni([[0.01, 0.02], [0.03, 0.04]]).shape == (2, 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm_bonferroni([0.1, 1.5])


@pytest.mark.parametrize("seed", range(20))
def test_holm_random_matches_definition_and_is_monotone(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 15))
    p = rng.uniform(0, 0.2, m) ** rng.uniform(0.5, 2.0)
    p[rng.uniform(size=m) < 0.2] = np.nan
    p[rng.uniform(size=m) < 0.1] = p[0]  # some ties
    adj = holm_bonferroni(p)
    np.testing.assert_allclose(adj, _holm_by_definition(p), rtol=1e-14, equal_nan=True)
    ok = ~np.isnan(p)
    order = np.argsort(p[ok], kind="stable")
    assert np.all(np.diff(adj[ok][order]) >= 0.0)  # monotone in the raw p
    assert np.all(adj[ok] >= p[ok]) and np.all(adj[ok] <= 1.0)


# ---------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_coverage(method):
    # 300 data sets of n = 30 from N(1, 2^2); the 95 % CI of the mean should cover mu = 1.
    # Band [0.90, 0.985]: the binomial sd of a 0.95 proportion over 300 trials is
    # sqrt(0.95 * 0.05 / 300) = 0.0126, so +-2.8 sd is about [0.915, 0.985]; the lower end is widened
    # to 0.90 because bootstrap intervals undercover at n = 30 (the percentile interval uses a
    # normal-like quantile with the plug-in sd, roughly a 0.93-0.94 coverage here).
    mu, covered = 1.0, 0
    for k in range(300):
        x = np.random.default_rng(1000 + k).normal(mu, 2.0, 30)
        low, high = bootstrap_ci(x, n_resamples=2000, seed=k, method=method)
        covered += low <= mu <= high
    coverage = covered / 300
    assert 0.90 <= coverage <= 0.985, coverage


@pytest.mark.parametrize(("ours", "theirs"), [("percentile", "percentile"), ("bca", "BCa")])
def test_bootstrap_agrees_with_scipy(ours, theirs):
    # Independent implementation, different seed. With 20000 resamples the Monte Carlo sd of each
    # endpoint is ~0.008 here (se of the mean ~0.4), ~0.011 for the difference of two; 0.03 is ~2.8 sd.
    # (Measured: |diff| <= 0.018 for the mean; the median's endpoints are data points and agree exactly.)
    x = np.random.default_rng(11).exponential(1.0, 25) * 2.0
    for stat in (np.mean, np.median):
        low, high = bootstrap_ci(x, statistic=stat, n_resamples=20000, seed=1, method=ours)
        ref = sps.bootstrap((x,), stat, n_resamples=20000, method=theirs, rng=2).confidence_interval
        assert low == pytest.approx(ref.low, abs=0.03)
        assert high == pytest.approx(ref.high, abs=0.03)


def test_bootstrap_determinism_and_chunking():
    x = np.random.default_rng(5).normal(0.0, 1.0, 40)
    for method in ("percentile", "bca"):
        a = bootstrap_ci(x, seed=3, n_resamples=3000, method=method)
        assert a == bootstrap_ci(x, seed=3, n_resamples=3000, method=method)
        assert a != bootstrap_ci(x, seed=4, n_resamples=3000, method=method)
    # n = 5000 needs several chunks of resamples (and of jackknife rows); still deterministic, and a
    # statistic without an ``axis`` keyword (applied row by row) sees the same resamples.
    big = np.random.default_rng(6).gamma(2.0, 1.0, 5000)
    one = bootstrap_ci(big, n_resamples=500, seed=0, method="bca")
    assert one == bootstrap_ci(big, n_resamples=500, seed=0, method="bca")
    rowwise = bootstrap_ci(big, statistic=lambda v: float(np.mean(v)), n_resamples=500, seed=0, method="bca")
    assert rowwise == pytest.approx(one, rel=1e-12)
    assert one[0] < np.mean(big) < one[1]


def test_bootstrap_degenerate_and_errors():
    assert bootstrap_ci([2.5] * 7) == (2.5, 2.5)
    assert bootstrap_ci([2.5] * 7, method="bca") == (2.5, 2.5)
    assert bootstrap_ci([2.5]) == (2.5, 2.5)
    with pytest.warns(RuntimeWarning, match="percentile"):
        fallback = bootstrap_ci([0.0, 1.0], method="bca", seed=0)  # BCa undefined for n = 2
    assert fallback == bootstrap_ci([0.0, 1.0], method="percentile", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bootstrap_ci([0.0, 1.0, 3.0, 4.5], method="bca")  # defined here: no warning
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci([1.0, 2.0], method="basic")
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([1.0, 2.0], n_resamples=0)
    with pytest.raises(ValueError, match="at least 1"):
        bootstrap_ci([])


def test_paired_ci_is_bca_of_the_mean_difference():
    from nsync_bench.stats.paired import BOOTSTRAP_MIN_N

    rng = np.random.default_rng(9)
    n = BOOTSTRAP_MIN_N + 2
    baseline = rng.normal(10.0, 1.0, n)
    candidate = baseline - rng.normal(0.5, 0.4, n)
    c = paired_comparison(candidate, baseline, direction="lower", n_resamples=4000, seed=2)
    assert isinstance(c, PairedComparison) and c.ci_method == "bca"
    expected = bootstrap_ci(baseline - candidate, n_resamples=4000, seed=2, method="bca")
    assert (c.ci_low, c.ci_high) == expected
    assert c == paired_comparison(candidate, baseline, direction="lower", n_resamples=4000, seed=2)


# ---------------------------------------------------------------- verdict


@pytest.mark.parametrize(
    ("mean_diff", "p", "expected"),
    [
        (1.0, 0.01, "supported"),
        (-1.0, 0.01, "contradicted"),
        (1.0, 0.2, "inconclusive"),
        (-1.0, 0.2, "inconclusive"),
        (1.0, 0.05, "inconclusive"),  # p must be strictly below alpha
        (0.0, 0.01, "inconclusive"),
        (1.0, float("nan"), "inconclusive"),
        (-1.0, float("nan"), "inconclusive"),
        (float("nan"), 0.01, "inconclusive"),
    ],
)
def test_verdict_truth_table(mean_diff, p, expected):
    """The verdict when the t-test alone decides (rule test = "t"; tests/test_exact_tests.py has the rest)."""
    assert rule_verdict(mean_diff, p, float("nan"), 0.05, "t") == expected


def test_verdict_rejects_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        rule_verdict(1.0, 0.01, 0.01, 5, "t")


def test_no_bootstrap_ci_below_minimum_n():
    """Two seeds, both favouring the candidate: every bootstrap resample of the mean lies in [1, 1.5], so a
    bootstrap CI 'excludes zero', yet the paired t-test has p > 0.05. Below BOOTSTRAP_MIN_N the CI is the
    t-interval, which excludes zero exactly when p_t < 1 - confidence."""
    from nsync_bench.stats.paired import BOOTSTRAP_MIN_N

    two = paired_comparison([0.0, 0.0], [1.0, 1.5], direction="lower")
    assert 0.05 < two.p_t < 0.2
    assert two.ci_method == "t" and two.ci_low < 0.0 < two.ci_high
    assert two.sd_diff == pytest.approx(np.std([1.0, 1.5], ddof=1))
    for n in range(3, BOOTSTRAP_MIN_N):
        d = np.linspace(0.5, 2.0, n)
        c = paired_comparison(np.zeros(n), d, direction="lower")
        assert c.ci_method == "t"
        assert (c.ci_low < 0.0) == (c.p_t > 0.05)
    big = paired_comparison(np.zeros(BOOTSTRAP_MIN_N), np.linspace(0.5, 2.0, BOOTSTRAP_MIN_N), direction="lower")
    assert big.ci_method == "bca"
