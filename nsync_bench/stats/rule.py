"""The declared verdict rule: which test decides, at which level, and what a verdict is called.

A claims file declares its primary test (``t``, ``permutation`` or ``both``) and its alpha; the
report applies Holm within each declared family and then this rule. Under ``both`` a claim is
supported only when the paired t-test *and* the exact sign-flip permutation test are below alpha
after adjustment; a result the t-test alone supports is named "supported (t only)" so a reader sees
that it rests on the t-test's normality assumption. Without a declared test the rule is ``auto``:
``both`` below :data:`AUTO_T_FROM_N` seeds (where the t-test's assumption cannot be checked and an
exact test is the honest one), ``t`` from there on (where the permutation and t-tests agree closely
and the t-test's power formula is exact enough).

At n pairs the smallest two-sided p-value any exact sign test can give is ``2 / 2^n`` (only the
all-plus and all-minus sign patterns are as extreme as n differences of one sign), so a family of m
tests can reach level alpha under Holm only if ``m * 2 / 2^n < alpha``. Pure functions.
"""

from __future__ import annotations

import math
from typing import Literal

__all__ = ["AUTO_T_FROM_N", "TESTS", "exact_min_p", "reach_message", "resolve_test", "rule_text", "rule_verdict",
           "seeds_to_reach", "uses_exact"]

Test = Literal["t", "permutation", "both"]
TESTS: tuple[str, ...] = ("t", "permutation", "both")
AUTO = "auto"
AUTO_T_FROM_N = 20
SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
T_ONLY = " (t only)"
VERDICTS = (SUPPORTED, SUPPORTED + T_ONLY, CONTRADICTED, CONTRADICTED + T_ONLY, INCONCLUSIVE, "not tested")


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1 (e.g. 0.05); got {alpha!r}.")
    return float(alpha)


def resolve_test(test: str, n: int) -> Test:
    """The test that decides at ``n`` pairs: ``test`` itself, or for ``auto`` both below 20 seeds and t from 20."""
    if test == AUTO:
        return "both" if n < AUTO_T_FROM_N else "t"
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; valid tests: {', '.join(TESTS)} (or leave it out for the default).")
    return test  # type: ignore[return-value]


def uses_exact(test: str, n: int) -> bool:
    """True when the exact (permutation) test must pass at ``n`` pairs."""
    return resolve_test(test, n) in ("permutation", "both")


def exact_min_p(n: int) -> float:
    """The smallest two-sided p-value of an exact sign-flip (or signed-rank) test on n non-zero differences,
    2 / 2^n (``ldexp``: 0.0 past float range, where ``2.0**n`` overflows at n = 1024)."""
    return 1.0 if n < 1 else min(1.0, math.ldexp(1.0, 1 - n))


def seeds_to_reach(alpha: float, m: int = 1) -> int:
    """The fewest pairs at which an exact two-sided test can reach ``alpha`` under Holm over ``m`` tests:
    the smallest n with ``m * 2 / 2^n < alpha``."""
    alpha = _check_alpha(alpha)
    if m < 1:
        raise ValueError(f"a family has at least one test; got m = {m!r}.")
    n = 1
    while m * exact_min_p(n) >= alpha:
        n += 1
    return n


def reach_message(n: int, alpha: float, m: int) -> str | None:
    """None when an exact test over a family of ``m`` tests can reach ``alpha`` with ``n`` seeds; otherwise
    the sentence that says it cannot, e.g. "5 seeds cannot reach 0.05 with an exact test; need >= 6, or
    >= 8 with Holm over 4"."""
    if m * exact_min_p(n) < _check_alpha(alpha):
        return None
    single = seeds_to_reach(alpha, 1)
    text = (f"{n} seed{'s' if n != 1 else ''} cannot reach {alpha:g} with an exact test (smallest two-sided p "
            f"2/2^{n} = {exact_min_p(n):.3g}); need >= {single}")
    if m > 1:
        text += f", or >= {seeds_to_reach(alpha, m)} with Holm over {m}"
    return text


def rule_verdict(mean_diff: float, p_t_adj: float, p_perm_adj: float, alpha: float, test: Test) -> str:
    """The verdict on "the candidate improves on the baseline" (oriented ``mean_diff > 0``) under ``test``.

    ``supported`` / ``contradicted`` when the deciding test(s) are below ``alpha`` after adjustment (the
    sign of ``mean_diff`` says which); under ``permutation`` or ``both``, a result only the t-test
    reaches is ``supported (t only)`` / ``contradicted (t only)`` (not a supported claim); else
    ``inconclusive`` (any nan counts as not below alpha).
    """
    alpha = _check_alpha(alpha)
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; valid tests: {', '.join(TESTS)}.")
    sign = float(mean_diff)
    if math.isnan(sign) or sign == 0.0:
        return INCONCLUSIVE
    word = SUPPORTED if sign > 0 else CONTRADICTED
    t_ok = float(p_t_adj) < alpha  # nan < alpha is False
    perm_ok = float(p_perm_adj) < alpha
    passes = {"t": t_ok, "permutation": perm_ok, "both": t_ok and perm_ok}[test]
    if passes:
        return word
    if t_ok:
        return word + T_ONLY
    return INCONCLUSIVE


def rule_text(test: str, alpha: float, declared: bool = True) -> str:
    """The rule in one sentence, as the report prints it."""
    what = {
        "t": "the paired t-test",
        "permutation": "the exact paired sign-flip permutation test",
        "both": "both the paired t-test and the exact paired sign-flip permutation test",
    }
    if test == AUTO:
        head = (f"test not declared, so the default: below {AUTO_T_FROM_N} seeds {what['both']}, from "
                f"{AUTO_T_FROM_N} seeds on {what['t']}")
    else:
        head = f"test = {test}: {what[test]}"
    text = (f"{head}, Holm-adjusted within each family, must be below alpha = {alpha:g} "
            f"({'declared' if declared else 'default'}); the sign of the mean difference says supported or "
            "contradicted.")
    if test != "t":
        text += " Where only the t-test is below alpha the verdict reads 'supported (t only)': it rests on the " \
                "t-test's normality assumption and is not a supported claim under this rule."
    return text
