"""Power of the paired t-test: what a comparison over n seeds could have detected.

An "inconclusive" verdict means nothing until one knows which effects the test could see. For
the two-sided paired t-test at level ``alpha`` on n differences with standard deviation ``s``,
the test statistic under a true mean difference ``delta`` follows a noncentral t distribution with
``n - 1`` degrees of freedom and noncentrality ``sqrt(n) * delta / s``; its power is

    power(d, n, alpha) = P(T > t_c) + P(T < -t_c),  T ~ t'(n - 1, sqrt(n) d),  t_c = t_{1 - alpha/2, n - 1}

with ``d = delta / s`` (Cohen's d_z). The **minimum detectable effect** (MDE) is the ``d`` at
which the power reaches the target (0.8), times ``s``: a smaller true effect is missed more than
20 % of the time. For large n it tends to the normal approximation
``(z_{1 - alpha/2} + z_{power}) / sqrt(n)``. Pure functions (scipy only).

The report applies these at the strictest Holm level, ``alpha / m`` for a family of m tests (the
first step of Holm's procedure, which a lone real effect among nulls must pass).
"""

from __future__ import annotations

import math

from scipy import integrate, optimize
from scipy import stats as sps

__all__ = ["DEFAULT_POWER", "minimum_detectable_effect", "paired_t_power", "seeds_needed"]

DEFAULT_POWER = 0.8
# seeds_needed gives up beyond this (a near-zero observed effect needs absurd numbers of seeds).
MAX_SEEDS = 100_000


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1 (e.g. 0.05); got {alpha!r}.")


def _check(alpha: float, power: float) -> None:
    _check_alpha(alpha)
    if not alpha < power < 1.0:
        raise ValueError(f"power must lie strictly between alpha ({alpha:g}) and 1 (e.g. 0.8); got {power!r}.")


def paired_t_power(effect_size: float, n: int, alpha: float) -> float:
    """Power of the two-sided paired t-test with n pairs at level ``alpha`` for a true d_z of ``effect_size``.

    nan for n < 2 (no test possible). ``effect_size`` 0 gives ``alpha``.
    """
    _check_alpha(alpha)
    if n < 2 or math.isnan(effect_size):
        return math.nan
    df = n - 1
    t_crit = float(sps.t.ppf(1.0 - alpha / 2.0, df))
    nc = math.sqrt(n) * abs(float(effect_size))
    # P(T < -c | nc) = P(T > c | -nc): both tails through the survival function.
    return _upper_tail(t_crit, df, nc) + _upper_tail(t_crit, df, -nc)


def _upper_tail(t_crit: float, df: int, nc: float) -> float:
    """P(T > t_crit) for T ~ t'(df, nc); scipy's nct fails (nan) far in the tails at small df, where
    the defining integral E_V[Phi(nc - t_crit sqrt(V / df))], V ~ chi2(df), is evaluated instead."""
    value = float(sps.nct.sf(t_crit, df, nc))
    if math.isfinite(value):
        return value
    return float(integrate.quad(lambda v: sps.chi2.pdf(v, df) * sps.norm.cdf(nc - t_crit * math.sqrt(v / df)),
                                0.0, math.inf, limit=200)[0])


def minimum_detectable_effect(n: int, alpha: float, power: float = DEFAULT_POWER) -> float:
    """The smallest d_z (difference / its standard deviation) detected with probability ``power``.

    Multiply by the observed standard deviation of the differences for the MDE in the metric's
    units. nan for n < 2.
    """
    _check(alpha, power)
    if n < 2:
        return math.nan
    upper = 1.0
    while paired_t_power(upper, n, alpha) < power:  # power grows with d: bracket, then solve
        upper *= 2.0
    return float(optimize.brentq(lambda d: paired_t_power(d, n, alpha) - power, 0.0, upper, xtol=1e-12, rtol=1e-12))


def seeds_needed(effect_size: float, alpha: float, power: float = DEFAULT_POWER, max_n: int = MAX_SEEDS) -> int | None:
    """The fewest pairs n >= 2 at which the paired t-test detects d_z = ``effect_size`` with ``power``.

    None when even ``max_n`` is not enough (or the effect is 0 or nan).
    """
    _check(alpha, power)
    d = abs(float(effect_size))
    if math.isnan(d) or d == 0.0 or paired_t_power(d, max_n, alpha) < power:
        return None
    # Start from the normal approximation and step to the exact answer (power increases with n).
    z = float(sps.norm.ppf(1.0 - alpha / 2.0) + sps.norm.ppf(power))
    n = max(2, math.ceil((z / d) ** 2))
    while n > 2 and paired_t_power(d, n - 1, alpha) >= power:
        n -= 1
    while paired_t_power(d, n, alpha) < power:
        n += 1
    return n
