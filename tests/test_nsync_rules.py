"""NSYNC's gradient rules against their formulas, an independent numpy implementation, and invariants."""

import numpy as np
import pytest
import torch

from nsync_bench.errors import UnknownNameError
from nsync_bench.methods.nsync import RULES, refine_gradient, refine_gradient_with_info


def proj(u, w):
    return (u @ w) / (w @ w) * w


# Written from docs/method.md §2 independently of the implementation (numpy, float64).
REFERENCE = {
    "paper": lambda a, b, c: a - proj(a, b),
    "code-v4.1": lambda a, b, c: a - proj(a, a + b),
    "code-v4.2": lambda a, b, c: a + proj(a, a) - proj(a, a + b),
    "code-v5.0": lambda a, b, c: (a + (a + b)) / 2,
    "code-v5.1": lambda a, b, c: (a + (a + b + c) + (a + b)) / 3,
}


def draws(shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=dtype) for _ in range(3)]


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("shape", [(768,), (3, 5, 7), (1, 32)])
def test_rule_matches_its_formula(rule, shape):
    a, b, c = draws(shape, seed=len(shape))
    out = refine_gradient(a, b, c, rule=rule)
    assert out.shape == a.shape and out.dtype == a.dtype
    expected = REFERENCE[rule](a.numpy().ravel(), b.numpy().ravel(), c.numpy().ravel())
    np.testing.assert_allclose(out.numpy().ravel(), expected, rtol=1e-12, atol=1e-12)


def test_float32_inputs_keep_their_dtype_and_agree_to_float32_precision():
    a, b, _ = draws((768,), dtype=torch.float32)
    out = refine_gradient(a, b, rule="paper")
    assert out.dtype == torch.float32
    expected = REFERENCE["paper"](a.double().numpy(), b.double().numpy(), None)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)  # one float32 rounding


def test_paper_rule_is_orthogonal_to_the_negative_gradient():
    a, b, _ = draws((768,))
    out = refine_gradient(a, b, rule="paper")
    assert abs(float(out @ b)) <= 1e-10 * float(out.norm() * b.norm())


def test_code_v41_is_orthogonal_to_a_plus_b_not_to_b():
    a, b, _ = draws((768,))
    b = b + 2 * a  # correlated, as positive and negative gradients are
    out = refine_gradient(a, b, rule="code-v4.1")
    assert abs(float(out @ (a + b))) <= 1e-10 * float(out.norm() * (a + b).norm())
    assert abs(float(out @ b)) > 1e-3 * float(out.norm() * b.norm())


def test_equal_norms_give_the_gradient_difference():
    a, b, _ = draws((768,))
    b = b / b.norm() * a.norm()
    torch.testing.assert_close(refine_gradient(a, b, rule="code-v4.1"), (a - b) / 2, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(refine_gradient(a, b, rule="code-v4.2"), (3 * a - b) / 2, rtol=1e-10, atol=1e-12)


def test_code_v42_ignores_the_anchor():
    a, b, c = draws((64,))
    assert torch.equal(refine_gradient(a, b, c, rule="code-v4.2"), refine_gradient(a, b, None, rule="code-v4.2"))


@pytest.mark.parametrize(
    ("rule", "make", "expected_skips"),
    [
        ("paper", lambda a: (a, torch.zeros_like(a)), 1),  # b = 0
        ("code-v4.1", lambda a: (a, -a), 1),  # a + b = 0
        ("code-v4.2", lambda a: (torch.zeros_like(a), torch.zeros_like(a)), 2),  # a = 0 and a + b = 0
        ("paper", lambda a: (a, torch.full_like(a, 1e-30)), 1),  # below eps
    ],
)
def test_degenerate_directions_are_skipped_and_counted(rule, make, expected_skips):
    a = draws((16,))[0]
    g_pos, g_neg = make(a)
    out, skipped = refine_gradient_with_info(g_pos, g_neg, rule=rule)
    assert torch.isfinite(out).all()
    assert skipped == expected_skips
    if rule == "paper":
        assert torch.equal(out, g_pos)  # nothing to remove


def test_unknown_rule_lists_the_valid_ones():
    a, b, _ = draws((4,))
    with pytest.raises(UnknownNameError, match=r"code-v4\.1, code-v4\.2, code-v5\.0, code-v5\.1, paper"):
        refine_gradient(a, b, rule="v4.2")


def test_anchor_rule_without_anchor_is_an_error():
    a, b, _ = draws((4,))
    with pytest.raises(ValueError, match="needs g_anchor"):
        refine_gradient(a, b, rule="code-v5.1")
