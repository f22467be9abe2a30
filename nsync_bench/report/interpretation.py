"""Text that tells a reader how to read the numbers: the floor, the power (MDE), inconclusive verdicts."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from nsync_bench.report.reference_rows import REFERENCE_LABEL
from nsync_bench.stats.paired import BOOTSTRAP_MIN_N


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def fmt(value: Any, signed: bool = False) -> str:
    """4 significant digits (``signed``: with a sign); an em dash for a missing value; text as it is."""
    if _missing(value):
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:+.4g}" if signed else f"{number:.4g}"


def fmt_p(value: Any) -> str:
    """p-values as 0.0123 (3 significant digits) or, below 0.001, as 1.2e-05; an em dash for a missing one."""
    if _missing(value):
        return "—"
    p = float(value)
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.2g}"


def seeds_text(value: Any) -> str:
    """Seeds needed to detect the observed effect: a count, or '—' when none would do
    (a zero or nan effect, or more than power.MAX_SEEDS)."""
    if _missing(value):
        return "—"
    return str(int(value))


FLOOR_NOTE = (
    f"'{REFERENCE_LABEL}': each metric computed between the style's real training images (a seeded sample of "
    "as many as a run generates, or all of them when fewer) and its real test images, with the same metric code "
    "and settings: what a perfect method would score at this sample size. It is a reference row, not a method: "
    "never starred, never compared."
)
POWER_NOTE = (
    "MDE: the minimum detectable effect of the paired t-test, the smallest true mean difference it detects "
    "with probability 0.8 at the observed standard deviation of the per-seed differences and n, at the "
    "strictest Holm level alpha/m (m tests in the family); in brackets, the seeds needed to detect the observed "
    "mean difference with that power ('—': the observed effect is zero or would need more than 100,000); in the "
    "per-prompt table n and that count are prompt × seed pairs. "
    f"CI methods: 't' = Student-t interval, used below {BOOTSTRAP_MIN_N} pairs because a bootstrap of so few "
    "values has few distinct resamples and undercovers (about 71% actual coverage for a nominal 95% at n = 3); "
    "'bca'/'percentile' = bootstrap over seeds from "
    f"{BOOTSTRAP_MIN_N} pairs on."
)


def inconclusive_text(mde: object, n: int, needed: object) -> str:
    """"inconclusive: effects below X are undetectable with n seeds" (+ the seeds the observed effect needs)."""
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    if mde is None or (isinstance(mde, float) and math.isnan(mde)):
        return f"inconclusive: no spread to estimate power from with {seeds}"
    text = f"inconclusive: effects below {fmt(mde)} are undetectable with {seeds}"
    if seeds_text(needed) != "—":
        text += f" (the observed effect would need {seeds_text(needed)} seeds)"
    return text
