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
    """Seeds needed to detect the declared effect: a count, or '—' when none would do
    (no declared effect, no SD, or more than power.MAX_SEEDS)."""
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
    "Power is planned from the smallest effect of interest each claim declares, never from the observed effect. "
    "MDE: the smallest true mean difference the deciding test (the declared rule's, at that n) detects with the "
    "declared power (default 0.8), at the observed SD of the per-seed differences, at the level alpha/m of Holm's "
    "first step (m tests in the family); exact-test power is simulated (4,000 draws of normal differences, every "
    "sign pattern tested). 'Seeds needed': the fewest seeds at which that test reaches the power for the declared "
    "effect (a raw effect is divided by the observed SD; with its range over the SD's 95% chi-square interval). "
    "In the per-prompt table the MDE is the t-test's and n counts prompt x seed pairs. "
    f"CI methods: 't' = Student-t interval, used below {BOOTSTRAP_MIN_N} pairs because a BCa bootstrap covers "
    "less than 93% of the time there in simulation (89% at 10 normal pairs); 'bca'/'percentile' = bootstrap "
    f"over seeds from {BOOTSTRAP_MIN_N} pairs on."
)


def scale_label(metric: str, transform: str, labels: dict[str, str]) -> str:
    """The metric as analysed, e.g. 'log FID'."""
    name = labels.get(metric, metric.upper())
    return name if transform in ("", "none") or _missing(transform) else f"{transform} {name}"


def effect_text(kind: Any, value: Any) -> str:
    """A declared smallest effect: 'd_z 1' or '0.056' (metric units on the analysis scale)."""
    if _missing(value) or not kind:
        return "—"
    return f"d_z {fmt(value)}" if kind == "d_z" else fmt(value)


def improvement_text(wins: Any, n: Any, low: Any, high: Any) -> str:
    """'4/5 seeds (28–99%)': how often the candidate was better, with the exact binomial interval."""
    if _missing(n) or int(n) == 0:
        return "—"
    return f"{int(wins)}/{int(n)} seeds ({100 * float(low):.0f}–{100 * float(high):.0f}%)"


def _needed(row: Any) -> str:
    needed = seeds_text(row.get("seeds_needed"))
    low, high = seeds_text(row.get("seeds_needed_low")), seeds_text(row.get("seeds_needed_high"))
    if needed != "—" and (low, high) != ("—", "—") and (low, high) != (needed, needed):
        needed += f" ({low}–{high} over the SD's interval)"
    return needed


def power_text(row: Any) -> str:
    """What the comparison could detect, and what the declared effect needs."""
    n = 0 if _missing(row.get("n")) else int(row["n"])
    mde_dz = row.get("mde_dz")
    parts = []
    if not _missing(mde_dz) and math.isinf(float(mde_dz)):
        parts.append(f"no exact test can reach {fmt_p(row.get('level'))} with {n} seeds")
    elif not _missing(row.get("MDE")):
        parts.append(f"MDE {fmt(row['MDE'])} (d_z {fmt(mde_dz)}) at {n} seeds, {row.get('test')} test, "
                     f"level {fmt_p(row.get('level'))}")
    if not _missing(row.get("sd_low")) and 2 <= n <= 10:
        parts.append(f"SD {fmt(row.get('sd_diff'))}, 95% interval [{fmt(row['sd_low'])}, {fmt(row['sd_high'])}]")
    if row.get("effect_kind"):
        effect = effect_text(row["effect_kind"], row.get("effect"))
        power = row.get("power_at_n")
        text = f"declared effect {effect}: "
        text += f"power {fmt(power)} now, " if not _missing(power) else ""
        parts.append(text + f"seeds needed {_needed(row)}")
    return "; ".join(parts) or "—"


def inconclusive_text(mde: object, n: int, needed: object) -> str:
    """"inconclusive: effects below X are undetectable with n seeds" (+ the seeds the declared effect needs)."""
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    if mde is None or (isinstance(mde, float) and math.isnan(mde)):
        return f"inconclusive: no spread to estimate power from with {seeds}"
    if isinstance(mde, float) and math.isinf(mde):
        text = f"inconclusive: no exact test can reach the level with {seeds}"
    else:
        text = f"inconclusive: effects below {fmt(mde)} are undetectable with {seeds}"
    if seeds_text(needed) != "—":
        text += f" (the declared effect needs {seeds_text(needed)} seeds)"
    return text
