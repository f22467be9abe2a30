"""Families of tests: which comparisons are Holm-adjusted together, and what each could detect.

A claims file (nsync_bench.report.claims) groups its claims into families; every seed-level
comparison a claim covers belongs to that claim's family, every other one (the default pairs,
``--compare``, metrics or styles no claim names, cell variants) to the family ``exploratory``.
Holm's procedure runs within each family of each (profile, protocol), separately on the t-test's,
the permutation test's and the Wilcoxon test's p-values.

Power is planned, not observed (nsync_bench.stats.design): for each comparison the minimum
detectable effect of the declared test at the seeds run, and, where a claim declares a smallest
effect of interest, the power at the seeds run and the seeds needed to detect it, all at
``alpha / m`` (m = the tests of its family) and the declared target power. A raw effect becomes a
d_z through the observed SD of the paired differences, whose 95 % chi-square interval is carried
beside it (and the seeds needed at both ends of it).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from nsync_bench.report.claims import EXPLORATORY, ClaimsFile
from nsync_bench.stats import paired as stats
from nsync_bench.stats.design import minimum_detectable_dz, power_at, sd_interval, seeds_needed_for
from nsync_bench.stats.rule import reach_message, resolve_test, uses_exact

SETTING = ["profile", "protocol"]
FAMILY_KEY = [*SETTING, "family"]
_P_COLUMNS = {"p_t": "p_t_adj", "p_perm": "p_perm_adj", "p_wilcoxon": "p_wilcoxon_adj"}


def adjust_within_families(frame: pd.DataFrame) -> pd.DataFrame:
    """Holm within each (profile, protocol, family); ``family_size`` = tests with a t-test p-value."""
    if frame.empty:
        return frame
    frame = frame.copy()
    for column in _P_COLUMNS.values():
        frame[column] = np.nan
    frame["family_size"] = 0
    for _, group in frame.groupby(FAMILY_KEY, sort=False):
        for raw, adjusted in _P_COLUMNS.items():
            if raw in group:
                frame.loc[group.index, adjusted] = stats.holm_bonferroni(group[raw].to_numpy(dtype=float))
        frame.loc[group.index, "family_size"] = max(int(group["p_t"].notna().sum()), 1)
    return frame


def _seeds(effect_dz: float, level: float, test: str, power: float) -> float:
    if not math.isfinite(effect_dz) or effect_dz <= 0.0:
        return math.nan
    needed = seeds_needed_for(effect_dz, level, test, power)
    return math.nan if needed is None else float(needed)


def add_power(frame: pd.DataFrame, claims: ClaimsFile, alpha: float) -> pd.DataFrame:
    """Per comparison: the deciding test at its n, the level alpha/m, the MDE of that test (d_z and metric
    units), the SD's 95 % interval, and for claimed comparisons the declared effect, the power at the seeds
    run and the seeds needed (at the observed SD and at both ends of its interval for raw effects)."""
    if frame.empty:
        return frame
    frame = frame.copy()
    rule = claims.rule
    by_id = {c.id: c for c in claims.claims}
    out: dict[str, list[object]] = {k: [] for k in (
        "test", "level", "mde_dz", "MDE", "sd_low", "sd_high", "effect_kind", "effect", "effect_reason", "effect_dz",
        "power_at_n", "power_mc_se", "seeds_needed", "seeds_needed_low", "seeds_needed_high")}
    for _, row in frame.iterrows():
        n, sd = int(row["n"]), float(row["sd_diff"])
        level = alpha / max(int(row["family_size"]), 1)
        test = resolve_test(rule.test, n) if n >= 1 else "t"
        mde_dz = minimum_detectable_dz(n, level, test, rule.power) if n >= 2 else math.nan
        sd_low, sd_high = sd_interval(sd, n)
        values: dict[str, object] = {"test": test, "level": level, "mde_dz": mde_dz,
                                     "MDE": mde_dz * sd if sd > 0 else math.nan, "sd_low": sd_low, "sd_high": sd_high}
        claim = by_id.get(str(row.get("claim") or ""))
        effect = claim.effects.get(str(row["metric"])) if claim else None
        values.update(effect_kind="", effect=math.nan, effect_reason="", effect_dz=math.nan, power_at_n=math.nan,
                      power_mc_se=math.nan, seeds_needed=math.nan, seeds_needed_low=math.nan,
                      seeds_needed_high=math.nan)
        if effect is not None:
            raw = effect.kind == "raw"
            dz = (effect.value / sd if sd > 0 else math.nan) if raw else effect.value
            estimate = power_at(dz, n, level, rule.test) if math.isfinite(dz) else None
            values.update(effect_kind=effect.kind, effect=effect.value, effect_reason=effect.reason, effect_dz=dz,
                          power_at_n=estimate.power if estimate else math.nan,
                          power_mc_se=estimate.mc_se if estimate else math.nan,
                          seeds_needed=_seeds(dz, level, rule.test, rule.power))
            if raw and math.isfinite(sd_low) and sd_low > 0:  # a larger SD needs more seeds
                values["seeds_needed_low"] = _seeds(effect.value / sd_low, level, rule.test, rule.power)
                values["seeds_needed_high"] = _seeds(effect.value / sd_high, level, rule.test, rule.power)
        for key, value in values.items():
            out[key].append(value)
    for key, column in out.items():
        frame[key] = column
    for key in ("seeds_needed", "seeds_needed_low", "seeds_needed_high"):
        frame[key] = frame[key].astype("Float64").round().astype("Int64")
    return frame


def family_table(frame: pd.DataFrame, claims: ClaimsFile, alpha: float) -> pd.DataFrame:
    """One row per (profile, protocol, family): its claims, tests, seeds, and whether the declared test can
    reach alpha at those seeds (``note``: the sentence that says it cannot)."""
    rows = []
    if frame.empty:
        return pd.DataFrame(columns=[*FAMILY_KEY, "claims", "tests", "seeds", "reachable", "note"])
    families = claims.families()
    for (profile, protocol, family), group in frame.groupby(FAMILY_KEY, sort=False):
        m = max(int(group["p_t"].notna().sum()), 1)
        n = int(group["n"].min())
        note = reach_message(n, alpha, m) if uses_exact(claims.rule.test, n) else None
        names = [c.id for c in families.get(family, [])] if family != EXPLORATORY else []
        rows.append({"profile": profile, "protocol": protocol, "family": family,
                     "claims": ", ".join(names) or "(comparisons in no claim)", "tests": m,
                     "seeds": n if group["n"].nunique() == 1 else f"{n}-{int(group['n'].max())}",
                     "reachable": note is None, "note": note or ""})
    return pd.DataFrame(rows)
