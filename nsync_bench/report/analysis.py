"""Report statistics: summaries, paired comparisons, per-prompt analysis, the claims check.

Units of analysis, stated in every table:

* **seed** — one number per run (a metric over all evaluation images); candidate and baseline
  are paired by run seed (same positive batches, noise and evaluation latents: the shared-seed
  contract). Each comparison gets the paired t-test, the exact sign-flip permutation test, the
  Wilcoxon signed-rank test and the probability of improvement, on the scale its claim declares.
  Holm adjusts them within the families a claims file declares (nsync_bench.report.families);
  comparisons in no claim form the ``exploratory`` family. Verdicts follow the file's declared rule
  (nsync_bench.report.claims_check).
* **prompt × seed** — per-image CSD scores paired by (seed, evaluation prompt): many more pairs,
  more power, but prompts are not independent replications of training; a separate family that
  never enters a verdict.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from nsync_bench.config.methods import default_pairs
from nsync_bench.report.claims import EXPLORATORY, ClaimsFile, load_claims
from nsync_bench.report.families import add_power, adjust_within_families, family_table
from nsync_bench.report.runs_table import ReportData
from nsync_bench.stats import paired as stats
from nsync_bench.stats.power import DEFAULT_POWER, minimum_detectable_effect
from nsync_bench.stats.rule import rule_text

log = logging.getLogger(__name__)

GROUP = ["profile", "protocol", "style"]


@dataclass
class Analysis:
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    per_prompt: pd.DataFrame
    claims: pd.DataFrame
    alpha: float
    claims_description: str = ""
    warnings: list[str] = field(default_factory=list)
    # Reference rows (the real-data floor, nsync_bench.report.reference_rows): shown, never compared.
    reference: pd.DataFrame = field(default_factory=pd.DataFrame)
    claims_file: ClaimsFile | None = None
    families: pd.DataFrame = field(default_factory=pd.DataFrame)
    rule: str = ""  # the verdict rule in one sentence


def summarize(results: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean, std, n and a t-based CI per (profile, protocol, style, method, metric); best per column marked."""
    rows = []
    for key, group in results.groupby([*GROUP, "method", "metric"]):
        summary = stats.describe(group["value"].to_numpy(), confidence=confidence)
        rows.append(dict(zip([*GROUP, "method", "metric"], key, strict=True), direction=group["direction"].iloc[0],
                         mean=summary.mean, std=summary.std, n=summary.n, ci_low=summary.ci_low,
                         ci_high=summary.ci_high, seeds=",".join(map(str, sorted(group["seed"])))))
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["best"] = False
    for _, group in frame.groupby([*GROUP, "metric"]):
        higher = group["direction"].iloc[0] == "higher"
        best = group["mean"].idxmax() if higher else group["mean"].idxmin()
        frame.loc[best, "best"] = True
    return frame


def _paired_row(key: dict, candidate: object, baseline: object, direction: Literal["lower", "higher"],
                unit: str, seed: int, confidence: float, transform: str = "none", exact: bool = True) -> dict:
    c = stats.paired_comparison(candidate, baseline, direction=direction, confidence=confidence, seed=seed,
                                transform=transform, permutation=exact)
    return {**key, "unit": unit, "n": c.n, "direction": direction, "transform": transform, "mean_diff": c.mean_diff,
            "ci_low": c.ci_low, "ci_high": c.ci_high, "ci_method": c.ci_method, "t": c.t_stat, "p_t": c.p_t,
            "p_perm": c.p_perm, "perm_method": c.perm_method, "perm_mc_se": c.perm_mc_se,
            "p_wilcoxon": c.p_wilcoxon, "wilcoxon_method": c.wilcoxon_method, "d_z": c.d_z, "sd_diff": c.sd_diff,
            "prob_improvement": c.prob_improvement, "pi_low": c.pi_low, "pi_high": c.pi_high, "wins": c.wins,
            "ties": c.ties}


def compare(results: pd.DataFrame, pairs: list[tuple[str, str]], claims: ClaimsFile | None = None,
            confidence: float = 0.95, seed: int = 0, warnings: list[str] | None = None) -> pd.DataFrame:
    """Seed-paired comparisons of each candidate with its baseline, each in its claim's family (or the
    exploratory one) and on its claim's declared scale; Holm within families (no power columns)."""
    rows = []
    for key, group in results.groupby([*GROUP, "metric"]):
        base_key = dict(zip([*GROUP, "metric"], key, strict=True))
        for candidate, baseline in pairs:
            a = group[group["method"] == candidate].set_index("seed")["value"]
            b = group[group["method"] == baseline].set_index("seed")["value"]
            common = sorted(set(a.index) & set(b.index))
            if not common:
                continue
            claim = claims.claim_for(candidate, baseline, base_key["metric"], base_key["style"]) if claims else None
            transform = claim.transform(base_key["metric"]) if claim else "none"
            row_key = {**base_key, "candidate": candidate, "baseline": baseline,
                       "claim": claim.id if claim else "", "family": claim.family if claim else EXPLORATORY}
            try:
                row = _paired_row(row_key, a.loc[common].to_numpy(), b.loc[common].to_numpy(),
                                  group["direction"].iloc[0], "seed", seed, confidence, transform)
            except ValueError as err:  # a declared log of a non-positive value: not testable as declared
                (warnings if warnings is not None else []).append(
                    f"{candidate} vs {baseline}, {base_key['metric']} on {base_key['style']}: not tested ({err})")
                continue
            row["seeds"] = ",".join(map(str, common))
            rows.append(row)
    return adjust_within_families(pd.DataFrame(rows))


def _adjust(frame: pd.DataFrame) -> pd.DataFrame:
    """One Holm family for the whole table (the per-prompt analysis)."""
    if frame.empty:
        return frame
    frame["p_t_adj"] = stats.holm_bonferroni(frame["p_t"].to_numpy(dtype=float))
    frame["p_wilcoxon_adj"] = stats.holm_bonferroni(frame["p_wilcoxon"].to_numpy(dtype=float))
    return frame


def _add_t_mde(frame: pd.DataFrame, alpha: float, power: float = DEFAULT_POWER) -> pd.DataFrame:
    """MDE of the paired t-test at alpha / m (m = tests in the table) and the observed SD."""
    if frame.empty:
        return frame
    level = alpha / max(int(frame["p_t"].notna().sum()), 1)
    frame["level"] = level
    frame["mde_dz"] = [minimum_detectable_effect(int(n), level, power) for n in frame["n"]]
    frame["MDE"] = (frame["mde_dz"] * frame["sd_diff"]).where(frame["sd_diff"] > 0)
    return frame


def compare_per_prompt(per_image: pd.DataFrame, runs: pd.DataFrame, pairs: list[tuple[str, str]],
                       confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """CSD per image, paired by (seed, prompt index) between candidate and baseline runs."""
    if per_image.empty:
        return pd.DataFrame()
    table = per_image.merge(runs[["run_id", *GROUP, "method", "seed"]], on="run_id")
    rows = []
    for key, group in table.groupby(GROUP):
        base_key = {**dict(zip(GROUP, key, strict=True)), "metric": "csd"}
        for candidate, baseline in pairs:
            a = group[group["method"] == candidate].set_index(["seed", "index"])["csd"]
            b = group[group["method"] == baseline].set_index(["seed", "index"])["csd"]
            common = sorted(set(a.index) & set(b.index))
            if len(common) < 2:
                continue
            rows.append(_paired_row({**base_key, "candidate": candidate, "baseline": baseline},
                                    a.loc[common].to_numpy(), b.loc[common].to_numpy(), "higher", "prompt x seed",
                                    seed, confidence, exact=False))
    return _adjust(pd.DataFrame(rows))


def _wanted_pairs(pairs: list[tuple[str, str]] | None, claims: ClaimsFile) -> list[tuple[str, str]]:
    wanted = list(pairs or default_pairs())  # each method's descriptor names its baseline
    for claim in claims.claims:  # claims may need comparisons beyond the default pairs
        if (claim.candidate, claim.baseline) not in wanted:
            wanted.append((claim.candidate, claim.baseline))
    return wanted


def analyze(data: ReportData, per_image: pd.DataFrame, *, alpha: float | None = None,
            pairs: list[tuple[str, str]] | None = None, claims: ClaimsFile | None = None,
            seed: int = 0) -> Analysis:
    """Everything the report shows, from the tidy results and the per-image CSD table.

    ``claims`` defaults to ``baselines/claims.toml``; ``alpha`` (None: the file's) overrides the declared
    level with a warning.
    """
    from nsync_bench.report.claims_check import check_claims

    claims = claims or load_claims()
    warnings = list(data.warnings)
    declared = claims.rule.alpha
    level = declared if alpha is None else float(alpha)
    if not math.isclose(level, declared):
        warnings.append(f"alpha {level:g} overrides the {declared:g} the claims file declares; verdicts at a level "
                        "chosen after the data are not the declared test.")
    wanted = _wanted_pairs(pairs, claims)
    comparisons = add_power(compare(data.results, wanted, claims, seed=seed, warnings=warnings), claims, level)
    per_prompt = _add_t_mde(compare_per_prompt(per_image, data.runs, wanted, seed=seed), level)
    families = family_table(comparisons, claims, level)
    warnings += [f"family {r.family} ({r.profile} / {r.protocol}): {r.note}." for r in families.itertuples()
                 if r.note and r.family != EXPLORATORY]
    return Analysis(
        summary=summarize(data.results),
        comparisons=comparisons,
        per_prompt=per_prompt,
        claims=check_claims(comparisons, claims, level, data.results),
        alpha=level,
        claims_description=claims.description,
        warnings=warnings,
        claims_file=claims,
        families=families,
        rule=rule_text(claims.rule.test, level, claims.rule.declared),
    )
