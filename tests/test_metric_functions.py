"""The pure metric functions (FID, KID, CMMD, CSD) against the worked values of
``docs/metrics.md`` (§2.5, §3.2, §4.3, §5.3), against clean-fid's own functions, and against
high-precision references; plus symmetry, identity, determinism and input errors.
"""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np
import pytest
import torch

from nsync_bench.errors import DataError
from nsync_bench.metrics.cmmd import GAMMA, SCALE, SIGMA, cmmd
from nsync_bench.metrics.csd import EPS, csd_per_image, csd_score
from nsync_bench.metrics.fid import (
    _frechet_distance_checked,
    _trace_sqrtm_product,
    _trace_sqrtm_product_lowrank,
    bootstrap_fid,
    fid_from_stats,
    frechet_distance,
    trace_sqrtm_product,
)
from nsync_bench.metrics.kid import kernel_inception_distance, mmd2_unbiased

ABS = 1e-9  # docs/metrics.md §1: worked values hold to 1e-9 absolute unless noted
SQRT_HALF = math.sqrt(0.5)


def _correlated(rng: np.random.Generator, n: int, d: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """Gaussian features with a non-isotropic covariance (a fixed random mixing matrix per d)."""
    mix = np.random.default_rng(d).normal(size=(d, d)) / math.sqrt(d)
    return scale * rng.normal(size=(n, d)) @ mix + shift


def _stats(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _cleanfid():
    return pytest.importorskip("cleanfid.fid")


# ----------------------------------------------------------------------------------------- CMMD


CMMD_X = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
CMMD_Y = [[0.0, 0.0, 1.0], [SQRT_HALF, SQRT_HALF, 0.0], [0.6, 0.0, 0.8]]


def _unit_pair(c: float) -> tuple[np.ndarray, np.ndarray]:
    return np.array([[1.0, 0.0]]), np.array([[c, math.sqrt(1.0 - c * c)]])


def _reference_mmd(x: np.ndarray, y: np.ndarray, dtype) -> float:
    """cmmd-pytorch ``distance.py::mmd`` transcribed (torch, full matrices, biased)."""
    x = torch.as_tensor(x, dtype=dtype)
    y = torch.as_tensor(y, dtype=dtype)
    x_sqnorms = torch.diag(x @ x.T)
    y_sqnorms = torch.diag(y @ y.T)
    gamma = 1 / (2 * 10**2)
    k_xx = torch.mean(torch.exp(-gamma * (-2 * x @ x.T + x_sqnorms[:, None] + x_sqnorms[None, :])))
    k_xy = torch.mean(torch.exp(-gamma * (-2 * x @ y.T + x_sqnorms[:, None] + y_sqnorms[None, :])))
    k_yy = torch.mean(torch.exp(-gamma * (-2 * y @ y.T + y_sqnorms[:, None] + y_sqnorms[None, :])))
    return float(1000 * (k_xx + k_yy - 2 * k_xy))


def test_cmmd_constants():
    assert SIGMA == 10.0
    assert SCALE == 1000.0
    assert GAMMA == 0.005


def test_cmmd_worked_value_5_1():
    assert cmmd(CMMD_X, CMMD_Y) == pytest.approx(4.324632474855594, abs=ABS)
    assert cmmd(CMMD_X, CMMD_X) == 0.0


@pytest.mark.parametrize(("c", "expected"), [(0.0, 19.90033250166401), (0.5, 9.97504161463536)])
def test_cmmd_single_pair_closed_form(c, expected):
    x, y = _unit_pair(c)
    assert cmmd(x, y) == pytest.approx(expected, abs=ABS)
    assert cmmd(x, y) == pytest.approx(2000.0 * (1.0 - math.exp(-(2.0 - 2.0 * c) / 200.0)), abs=ABS)
    # The cmmd-pytorch example: three identical copies per side reduce to the single pair.
    assert cmmd(np.repeat(x, 3, axis=0), np.repeat(y, 3, axis=0)) == pytest.approx(expected, abs=ABS)


def test_cmmd_example_cosine_gives_7_696():
    # docs/metrics.md §4.3 item 3: c = 0.61445774 reproduces the printed 7.696 (3 decimals).
    x, y = _unit_pair(0.61445774)
    assert cmmd(x, y) == pytest.approx(7.696, abs=5e-4)


def test_cmmd_matches_transcribed_reference_and_normalises():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 16)) + 0.5
    y = rng.normal(size=(25, 16))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    ours = cmmd(xn, yn)
    assert ours == pytest.approx(_reference_mmd(xn, yn, torch.float64), rel=1e-10)
    # The reference runs float32: cancellation under the x1000 scale costs ~1e-4 absolute (docs/metrics.md §4.1).
    assert ours == pytest.approx(_reference_mmd(xn, yn, torch.float32), abs=2e-3)
    # Normalisation inside: unnormalised input and rescaled rows give the same value.
    assert cmmd(x, y) == pytest.approx(ours, rel=1e-12)
    assert cmmd(3.0 * xn, 0.1 * yn) == pytest.approx(ours, rel=1e-12)


def test_cmmd_identity_symmetry_blocks_and_torch():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 8))
    y = rng.normal(size=(17, 8)) + 0.2
    # Identical sets: 0 up to rounding (numpy may route x @ x.T through a different BLAS
    # kernel than x @ copy.T, so bit-for-bit cancellation is not guaranteed; measured ~3e-15).
    assert abs(cmmd(x, x.copy())) <= 1e-9
    assert abs(cmmd(x, x.copy(), block_size=7)) <= 1e-9
    assert cmmd(x, y) == pytest.approx(cmmd(y, x), rel=1e-12)
    assert cmmd(x, y, block_size=4) == pytest.approx(cmmd(x, y), rel=1e-12)
    assert cmmd(torch.tensor(x, dtype=torch.float64), torch.tensor(y)) == pytest.approx(cmmd(x, y), rel=1e-6)
    assert cmmd(x, y) > 0.0


# ------------------------------------------------------------------------------------------ FID


F1 = [[0, 0], [1, 0], [0, 1], [1, 1], [2, 1]]
F2 = [[1, 1], [2, 0], [0, 2], [3, 3]]


def test_fid_worked_values_5_2():
    assert fid_from_stats([0, 0], np.diag([1.0, 4.0]), [1, 2], np.diag([4.0, 9.0])) == pytest.approx(7.0, abs=ABS)
    assert frechet_distance(F1, F2) == pytest.approx(2.0663288595263465, abs=ABS)
    # The same value through each code path (n > d here, so frechet_distance used the covariance path).
    a, b = np.asarray(F1, float), np.asarray(F2, float)
    mu1, s1 = _stats(a)
    mu2, s2 = _stats(b)
    np.testing.assert_allclose(mu1, [0.8, 0.6])
    np.testing.assert_allclose(s1, [[0.7, 0.15], [0.15, 0.3]])
    np.testing.assert_allclose(s2, [[5 / 3, 1 / 3], [1 / 3, 5 / 3]])
    assert fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(2.0663288595263465, abs=ABS)
    low = _trace_sqrtm_product_lowrank(a - mu1, b - mu2)
    assert low == pytest.approx(_trace_sqrtm_product(s1, s2), rel=1e-13)


def test_fid_matches_cleanfid_full_rank():
    cf = _cleanfid()
    rng = np.random.default_rng(2)
    f1 = _correlated(rng, 200, 64)
    f2 = _correlated(rng, 300, 64, scale=1.2, shift=0.15)
    mu1, s1 = _stats(f1)
    mu2, s2 = _stats(f2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # sqrtm(disp=False), removed in SciPy 1.18
        ref = float(cf.frechet_distance(mu1, s1, mu2, s2))
    ours = frechet_distance(f1, f2)
    assert ours == pytest.approx(ref, rel=1e-6)
    assert fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-6)
    # Measured agreement is ~1e-13; keep a tighter check so regressions show.
    assert abs(ours - ref) / ref < 1e-10


def _mp_reference_fd(a: np.ndarray, b: np.ndarray, dps: int = 50) -> float:
    """FD in 50-digit arithmetic, by a different algorithm: eigenvalues of the Gram matrix K K'.

    K = A B' (centred data). In 50 digits the square root of tiny eigenvalues is harmless,
    so this is an independent, high-precision value for the rank-deficient case.
    """
    with mpmath.workdps(dps):
        a_mp = mpmath.matrix(a.tolist())
        b_mp = mpmath.matrix(b.tolist())
        (n1, d), n2 = a.shape, b.shape[0]
        mu1 = [mpmath.fsum(a_mp[i, j] for i in range(n1)) / n1 for j in range(d)]
        mu2 = [mpmath.fsum(b_mp[i, j] for i in range(n2)) / n2 for j in range(d)]
        ac = mpmath.matrix(n1, d)
        bc = mpmath.matrix(n2, d)
        for j in range(d):
            for i in range(n1):
                ac[i, j] = a_mp[i, j] - mu1[j]
            for i in range(n2):
                bc[i, j] = b_mp[i, j] - mu2[j]
        k = ac * bc.T
        eig = mpmath.eigsy(k * k.T, eigvals_only=True)
        tr_sqrt = mpmath.fsum(mpmath.sqrt(max(e, 0)) for e in eig) / mpmath.sqrt((n1 - 1) * (n2 - 1))
        tr1 = mpmath.fsum(ac[i, j] ** 2 for i in range(n1) for j in range(d)) / (n1 - 1)
        tr2 = mpmath.fsum(bc[i, j] ** 2 for i in range(n2) for j in range(d)) / (n2 - 1)
        dmu = mpmath.fsum((mu1[j] - mu2[j]) ** 2 for j in range(d))
        return float(dmu + tr1 + tr2 - 2 * tr_sqrt)


def test_fid_rank_deficient_matches_high_precision():
    # n = 20 < d = 64: both covariances have rank 19. The inputs are exact float64 numbers, so
    # the 50-digit value is the true FD of these features. Both float64 paths sum singular
    # values (absolute error ~eps * ||K|| each, no square root of rounding noise), so a relative
    # tolerance of 1e-11 leaves three orders of margin over the measured ~1e-15.
    rng = np.random.default_rng(3)
    f1 = _correlated(rng, 20, 64)
    f2 = _correlated(rng, 20, 64, shift=0.2)
    ref = _mp_reference_fd(f1, f2)
    ours = frechet_distance(f1, f2)  # low-rank path
    via_stats = fid_from_stats(*_stats(f1), *_stats(f2))  # covariance path
    assert math.isfinite(ours)
    assert ours >= 0.0
    assert ours == pytest.approx(ref, rel=1e-11)
    assert via_stats == pytest.approx(ref, rel=1e-11)
    # Different sizes, one rank-deficient side.
    g = _correlated(rng, 12, 64, scale=0.8)
    assert frechet_distance(g, f1) == pytest.approx(_mp_reference_fd(g, f1), rel=1e-11)


def test_fid_paths_agree_full_rank():
    rng = np.random.default_rng(4)
    f1 = _correlated(rng, 150, 32)
    f2 = _correlated(rng, 90, 32, scale=0.7, shift=-0.1)
    mu1, s1 = _stats(f1)
    mu2, s2 = _stats(f2)
    low = _trace_sqrtm_product_lowrank(f1 - mu1, f2 - mu2)
    assert low == pytest.approx(trace_sqrtm_product(s1, s2), rel=1e-12)
    assert trace_sqrtm_product(s1, s2) == pytest.approx(trace_sqrtm_product(s2, s1), rel=1e-12)


@pytest.mark.parametrize(("n", "d"), [(20, 64), (300, 16)])
def test_fid_identical_sets_is_zero(n, d):
    # FD(X, X) = 2 Tr S - 2 Tr sqrt(S^2) = 0 exactly; numerically it is the difference of two
    # terms of size Tr S, so the error scales with Tr S. Measured |FD| / Tr S ~1e-15 (both
    # paths); 1e-9 relative to the trace is a wide but still meaningful bound.
    f = _correlated(np.random.default_rng(5), n, d, shift=1.0)
    mu, s = _stats(f)
    scale = 2.0 * np.trace(s)
    assert abs(frechet_distance(f, f.copy())) <= 1e-9 * scale
    assert abs(fid_from_stats(mu, s, mu, s)) <= 1e-9 * scale


def test_fid_symmetric_and_torch_input():
    rng = np.random.default_rng(6)
    for n1, n2, d in [(40, 60, 8), (10, 15, 32)]:
        a = _correlated(rng, n1, d)
        b = _correlated(rng, n2, d, scale=1.3, shift=0.4)
        assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-12)
        assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(
            frechet_distance(a, b), rel=1e-12
        )


def test_fid_large_sets_fall_back_to_covariance_path(monkeypatch):
    # One side rank-deficient (n = 30 < d = 40), the other full rank: the hardest case for the
    # covariance path (without its eigenvalue threshold it was off by 1.7e-9 relative here).
    import nsync_bench.metrics.fid as fid_module

    rng = np.random.default_rng(7)
    a = _correlated(rng, 30, 40)
    b = _correlated(rng, 50, 40, shift=0.3)
    ref = _mp_reference_fd(a, b, dps=40)
    low = frechet_distance(a, b)
    assert low == pytest.approx(ref, rel=1e-11)
    monkeypatch.setattr(fid_module, "_LOW_RANK_MAX_ENTRIES", 10)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-11)


# ----------------------------------------------------------------------------- bootstrapped FID


def test_bootstrap_fid_reproduces_the_gan_metrics_procedure():
    rng = np.random.default_rng(8)
    a = _correlated(rng, 60, 6)
    b = _correlated(rng, 45, 6, scale=1.2, shift=0.3)
    mean, std = bootstrap_fid(a, b, n_bootstraps=7, seed=11)
    # Replicate: per round resample a then b with replacement to their own sizes, then FD.
    r = np.random.default_rng(11)
    values = []
    for _ in range(7):
        ia = r.choice(len(a), len(a), replace=True)
        ib = r.choice(len(b), len(b), replace=True)
        values.append(frechet_distance(a[ia], b[ib]))
    assert mean == pytest.approx(np.mean(values), rel=1e-12)
    assert std == pytest.approx(np.std(values), rel=1e-12)  # ddof = 0, like gan-metrics
    assert len(set(values)) == 7


def test_bootstrap_fid_deterministic_seeded_and_plausible():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(400, 8))
    b = rng.normal(size=(400, 8)) * 1.1 + 0.3
    first = bootstrap_fid(a, b, n_bootstraps=50, seed=0)
    assert bootstrap_fid(a, b, n_bootstraps=50, seed=0) == first
    assert bootstrap_fid(a, b, n_bootstraps=50, seed=1) != first
    mean, std = first
    plain = frechet_distance(a, b)
    assert std > 0.0
    # Resampling with replacement duplicates rows and biases FD upward (about one std here),
    # but the plain value stays well inside the bootstrap spread.
    assert plain < mean < plain + 3.0 * std
    one_mean, one_std = bootstrap_fid(a, b, n_bootstraps=1, seed=0)
    assert one_std == 0.0
    assert one_mean == pytest.approx(_frechet_distance_checked(*_first_resample(a, b, seed=0)), rel=1e-12)


def _first_resample(a: np.ndarray, b: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    return a[r.choice(len(a), len(a), replace=True)], b[r.choice(len(b), len(b), replace=True)]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bootstrap_fid_rejects_bad_round_counts(bad):
    a = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="n_bootstraps"):
        bootstrap_fid(a, a, n_bootstraps=bad)


# ------------------------------------------------------------------------------------------ KID


KID_A = [[1, 0], [0, 1], [1, 1]]
KID_B = [[0, 0], [2, 0], [0, 2]]
KID_VALUE = -4.6388888888888875


def test_kid_worked_value_5_3():
    assert mmd2_unbiased(KID_A, KID_B) == pytest.approx(KID_VALUE, abs=ABS)
    assert mmd2_unbiased(KID_B, KID_A) == pytest.approx(KID_VALUE, abs=ABS)
    for seed in range(5):
        mean, std = kernel_inception_distance(KID_A, KID_B, seed=seed)
        assert mean == pytest.approx(KID_VALUE, abs=ABS)
        assert std == pytest.approx(0.0, abs=ABS)
        assert kernel_inception_distance(KID_B, KID_A, seed=seed)[0] == pytest.approx(KID_VALUE, abs=ABS)


def test_kid_matches_cleanfid_deterministic_case():
    # n_a == n_b <= max_subset_size: every subset is a permutation of the full sets, so the
    # value does not depend on the draws and is compared directly.
    cf = _cleanfid()
    rng = np.random.default_rng(9)
    f1 = _correlated(rng, 150, 32)
    f2 = _correlated(rng, 150, 32, scale=1.1, shift=0.1)
    ref = cf.kernel_distance(f1, f2, num_subsets=10, max_subset_size=1000)
    mean, std = kernel_inception_distance(f1, f2, num_subsets=10, max_subset_size=1000, seed=123)
    assert mean == pytest.approx(ref, rel=1e-6)
    assert abs(mean - ref) <= 1e-10 * abs(ref)  # measured ~1e-15
    assert std <= 1e-12 * abs(mean)
    assert mmd2_unbiased(f2, f1) == pytest.approx(ref, rel=1e-10)


def test_kid_matches_cleanfid_random_subsets():
    cf = _cleanfid()
    rng = np.random.default_rng(10)
    f1 = _correlated(rng, 90, 16)
    f2 = _correlated(rng, 140, 16, scale=1.2, shift=0.2)
    # (1) Exact: replay clean-fid's global-np.random draws (x from feats2, then y from feats1)
    # and average our per-subset estimator.
    np.random.seed(1234)
    ref = cf.kernel_distance(f1, f2, num_subsets=20, max_subset_size=1000)
    replay = np.random.RandomState(1234)
    m = min(len(f1), len(f2))
    per_subset = []
    for _ in range(20):
        x = f2[replay.choice(len(f2), m, replace=False)]
        y = f1[replay.choice(len(f1), m, replace=False)]
        per_subset.append(mmd2_unbiased(x, y))
    assert np.mean(per_subset) == pytest.approx(ref, rel=1e-10)
    # (2) Approximate: our seeded draws differ from clean-fid's, so compare the two means within
    # the Monte-Carlo error of 200 subsets each (6 combined standard errors).
    np.random.seed(99)
    ref200 = cf.kernel_distance(f1, f2, num_subsets=200, max_subset_size=1000)
    mean, std = kernel_inception_distance(f1, f2, num_subsets=200, seed=5)
    assert abs(mean - ref200) <= 6.0 * std * math.sqrt(2.0 / 200)


def test_kid_seed_behaviour():
    rng = np.random.default_rng(11)
    a = _correlated(rng, 50, 8)
    b = _correlated(rng, 80, 8, shift=0.5)
    first = kernel_inception_distance(a, b, num_subsets=20, seed=3)
    assert kernel_inception_distance(a, b, num_subsets=20, seed=3) == first
    assert kernel_inception_distance(a, b, num_subsets=20, seed=4) != first
    assert first[1] > 0.0
    # Subset size capped at max_subset_size: subsampling now happens for equal sizes too.
    c = _correlated(rng, 50, 8, shift=0.5)
    capped = kernel_inception_distance(a, c, num_subsets=20, max_subset_size=10, seed=3)
    assert kernel_inception_distance(a, c, num_subsets=20, max_subset_size=10, seed=4) != capped


def test_kid_symmetric_when_sizes_equal():
    rng = np.random.default_rng(12)
    a = _correlated(rng, 60, 8)
    b = _correlated(rng, 60, 8, scale=1.4)
    assert kernel_inception_distance(a, b, num_subsets=3)[0] == pytest.approx(
        kernel_inception_distance(b, a, num_subsets=3)[0], rel=1e-12
    )


def test_kid_identical_sets_closed_form():
    # KID(X, X) with m = n: the within-set sums exclude the diagonal, the cross sum includes it,
    # so the value is -2 (mean diag k - mean k) / (n - 1): not 0, but O(1/n) and <= 0 here.
    # (x and y are the same sample, not independent ones, so "unbiased" does not mean 0.)
    f = _correlated(np.random.default_rng(13), 40, 6)
    k = (f @ f.T / 6 + 1.0) ** 3
    expected = -2.0 * (np.mean(np.diag(k)) - np.mean(k)) / (len(f) - 1)
    mean, std = kernel_inception_distance(f, f.copy(), num_subsets=5, seed=0)
    assert mean == pytest.approx(expected, rel=1e-12)
    assert mean < 0.0
    assert std <= 1e-12 * abs(mean)


@pytest.mark.parametrize(("kwargs", "match"), [({"num_subsets": 0}, "num_subsets"), ({"max_subset_size": 1}, "max")])
def test_kid_rejects_bad_parameters(kwargs, match):
    a = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match=match):
        kernel_inception_distance(a, a, **kwargs)


# ------------------------------------------------------------------------------------------ CSD


CSD_REAL = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
CSD_GEN = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [SQRT_HALF, SQRT_HALF, 0.0]]


def test_csd_worked_value_5_4():
    assert EPS == 1e-6
    assert csd_score(CSD_GEN, CSD_REAL) == pytest.approx(0.5690355937288492, abs=ABS)
    np.testing.assert_allclose(csd_per_image(CSD_GEN, CSD_REAL), [SQRT_HALF, 0.0, 1.0], atol=ABS)


def test_csd_matches_nsync_torch_code():
    # giddyyupp/NSYNC calculate_csd.py, in float64.
    rng = np.random.default_rng(14)
    real = rng.normal(size=(30, 12))
    gen = rng.normal(size=(20, 12)) + 0.3
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    gen /= np.linalg.norm(gen, axis=1, keepdims=True)
    values = torch.from_numpy(real)
    query = torch.from_numpy(gen)
    mean_style_feature = torch.mean(values, dim=0).unsqueeze(0)
    cos = torch.nn.CosineSimilarity(dim=1, eps=1e-6)(mean_style_feature, query)
    np.testing.assert_allclose(csd_per_image(query, values), cos.numpy(), rtol=1e-12)
    assert csd_score(gen, real) == pytest.approx(float(torch.mean(cos)), rel=1e-12)
    # Equals gbar . m / ||m|| for unit-norm generated embeddings (docs/metrics.md §5.1).
    m = real.mean(axis=0)
    assert csd_score(gen, real) == pytest.approx(gen.mean(axis=0) @ m / np.linalg.norm(m), rel=1e-12)


def test_csd_eps_clamps_each_norm_like_torch():
    gen = np.array([[1e-7, 0.0, 0.0], [1e-7, 1e-7, 0.0], [1.0, 0.0, 0.0]])
    real = np.array([[1.0, 0.0, 0.0], [1e-7, 1e-7, 0.0]])
    tiny_mean = np.array([[1e-7, 0.0, 0.0], [3e-7, 0.0, 0.0]])  # ||m|| = 2e-7 < eps
    cos = torch.nn.CosineSimilarity(dim=1, eps=1e-6)
    for r in (real, tiny_mean):
        expected = cos(torch.from_numpy(r).mean(0, keepdim=True), torch.from_numpy(gen)).numpy()
        np.testing.assert_allclose(csd_per_image(gen, r), expected, rtol=1e-12)


# --------------------------------------------------------------------------------------- errors


GOOD = np.random.default_rng(0).normal(size=(5, 3))

PAIR_METRICS = [
    pytest.param(frechet_distance, 2, id="fid"),
    pytest.param(lambda a, b: bootstrap_fid(a, b, n_bootstraps=2), 2, id="bootstrap_fid"),
    pytest.param(lambda a, b: kernel_inception_distance(a, b, num_subsets=2), 2, id="kid"),
    pytest.param(mmd2_unbiased, 2, id="mmd2_unbiased"),
    pytest.param(cmmd, 1, id="cmmd"),
    pytest.param(csd_score, 1, id="csd_score"),
    pytest.param(csd_per_image, 1, id="csd_per_image"),
]


@pytest.mark.parametrize(("fn", "min_samples"), PAIR_METRICS)
def test_too_few_samples(fn, min_samples):
    few = GOOD[: min_samples - 1]
    with pytest.raises(ValueError, match=rf"{min_samples - 1} sample\(s\); this metric needs at least {min_samples}"):
        fn(few, GOOD)
    with pytest.raises(ValueError, match="at least"):
        fn(GOOD, few)
    fn(GOOD[:min_samples], GOOD[:min_samples])  # the minimum itself is accepted


@pytest.mark.parametrize(("fn", "min_samples"), PAIR_METRICS)
def test_dimension_mismatch(fn, min_samples):
    with pytest.raises(ValueError, match=r"feature dimensions differ: .* dim 3, .* dim 4"):
        fn(GOOD, np.ones((5, 4)))


@pytest.mark.parametrize(("fn", "min_samples"), PAIR_METRICS)
@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_non_finite_input(fn, min_samples, bad_value):
    bad = GOOD.copy()
    bad[2, 1] = bad_value
    with pytest.raises(ValueError, match=r"non-finite value\(s\).*index \(2, 1\)"):
        fn(GOOD, bad)
    with pytest.raises(DataError, match=r"^(feats_a|x|emb_a|gen_emb) contains"):
        fn(torch.from_numpy(bad), GOOD)


@pytest.mark.parametrize(("fn", "min_samples"), PAIR_METRICS)
def test_wrong_rank(fn, min_samples):
    with pytest.raises(ValueError, match="must be a 2-D"):
        fn(GOOD[0], GOOD)
    with pytest.raises(ValueError, match="must be a 2-D"):
        fn(GOOD, GOOD[None])


def test_fid_from_stats_errors():
    mu, s = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match="square"):
        fid_from_stats(mu, np.ones((3, 2)), mu, s)
    with pytest.raises(ValueError, match="1-D mean"):
        fid_from_stats(s, s, mu, s)
    with pytest.raises(ValueError, match="dimensions differ"):
        fid_from_stats(mu, s, np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="mean vectors have length 3"):
        fid_from_stats(mu, np.eye(4), mu, s)
    with pytest.raises(ValueError, match="non-finite"):
        fid_from_stats(mu, np.full((3, 3), np.nan), mu, s)


def test_cmmd_rejects_zero_embedding():
    with pytest.raises(ValueError, match="all-zero embedding"):
        cmmd(np.zeros((2, 3)), GOOD)
