"""The claims check: each claim x (profile, protocol) x style x metric, judged by the declared rule.

A claim's styles are its declared filter, or every style the report has in that setting; a style or
method without runs is "not tested". The verdict is
:func:`nsync_bench.stats.rule.rule_verdict` on the comparison's Holm-adjusted p-values (within the
claim's family) with the test the rule prescribes at the comparison's n ("supported (t only)" where
the rule needs the exact test and only the t-test is below alpha).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nsync_bench.report.claims import ClaimsFile
from nsync_bench.stats.rule import resolve_test, rule_verdict

SETTING = ["profile", "protocol"]
# Copied from the comparison onto the claim's row (comparisons.csv has them all).
CARRIED = ["n", "test", "transform", "mean_diff", "ci_low", "ci_high", "p_t", "p_t_adj", "p_perm", "p_perm_adj",
           "perm_method", "p_wilcoxon", "p_wilcoxon_adj", "prob_improvement", "pi_low", "pi_high", "wins", "ties",
           "family_size", "level", "sd_diff", "sd_low", "sd_high", "mde_dz", "MDE", "effect_kind", "effect",
           "effect_dz", "effect_reason", "power_at_n", "power_mc_se", "seeds_needed", "seeds_needed_low",
           "seeds_needed_high"]
COLUMNS = ["claim", "family", "text", "profile", "protocol", "style", "metric", "candidate", "baseline", "verdict",
           *CARRIED]


def _settings(comparisons: pd.DataFrame, results: pd.DataFrame) -> list[tuple[str, str]]:
    frames = [f[SETTING] for f in (comparisons, results) if len(f)]
    if not frames:
        return []
    return [(str(r[0]), str(r[1])) for r in pd.concat(frames).drop_duplicates().itertuples(index=False)]


def check_claims(comparisons: pd.DataFrame, claims: ClaimsFile, alpha: float,
                 results: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per claim x setting x style x metric with its verdict and the evidence behind it."""
    results = results if results is not None else pd.DataFrame(columns=[*SETTING, "style"])
    rows = []
    for profile, protocol in _settings(comparisons, results):
        present = sorted(set(results.loc[(results["profile"] == profile) & (results["protocol"] == protocol),
                                         "style"]) if len(results) else set())
        if len(comparisons):
            here = comparisons[(comparisons["profile"] == profile) & (comparisons["protocol"] == protocol)]
            present = sorted(set(present) | set(here["style"]))
        for claim in claims.claims:
            for style in claim.styles if claim.styles is not None else present:
                for metric in claim.metrics:
                    row = {"claim": claim.id, "family": claim.family, "text": claim.text, "profile": profile,
                           "protocol": protocol, "style": style, "metric": metric, "candidate": claim.candidate,
                           "baseline": claim.baseline}
                    match = comparisons[(comparisons["profile"] == profile) & (comparisons["protocol"] == protocol)
                                        & (comparisons["style"] == style) & (comparisons["metric"] == metric)
                                        & (comparisons["candidate"] == claim.candidate)
                                        & (comparisons["baseline"] == claim.baseline)] if len(comparisons) \
                        else pd.DataFrame()
                    if match.empty:
                        effect = claim.effects[metric]
                        rows.append({**row, "verdict": "not tested", "n": 0, "transform": claim.transform(metric),
                                     "effect_kind": effect.kind, "effect": effect.value,
                                     "effect_reason": effect.reason})
                        continue
                    m = match.iloc[0]
                    test = resolve_test(claims.rule.test, int(m["n"]))
                    verdict = rule_verdict(m["mean_diff"], m["p_t_adj"], m["p_perm_adj"], alpha, test)
                    rows.append({**row, "verdict": verdict, **{k: m.get(k, np.nan) for k in CARRIED}})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for key in ("seeds_needed", "seeds_needed_low", "seeds_needed_high"):
        frame[key] = frame[key].astype("Int64")
    return frame
