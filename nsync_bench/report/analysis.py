"""Report statistics: summaries, paired comparisons, per-prompt analysis, the claims check.

Units of analysis, stated in every table:

* **seed** — one number per run (a metric over all evaluation images); candidate and baseline
  are paired by run seed (same positive batches, noise and evaluation latents: the shared-seed
  contract). The paired t-test is the primary test; Holm–Bonferroni adjusts its p-values over the
  whole family of seed-level comparisons in the report. Wilcoxon p-values are adjusted alongside.
* **prompt × seed** — per-image CSD scores paired by (seed, evaluation prompt): many more pairs,
  more power, but prompts are not independent replications of training; a separate family.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from nsync_bench.compat import tomllib
from nsync_bench.paths import shipped_dir
from nsync_bench.report.runs_table import ReportData
from nsync_bench.stats import paired as stats
from nsync_bench.stats.power import DEFAULT_POWER, minimum_detectable_effect, seeds_needed

log = logging.getLogger(__name__)

DEFAULT_PAIRS = (("nsync", "ti"), ("nsync-lora", "lora"))
GROUP = ["profile", "protocol", "style"]


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    candidate: str
    baseline: str
    metrics: tuple[str, ...]


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


def load_claims(path: Path | None = None) -> tuple[str, list[Claim]]:
    path = path or shipped_dir("baselines") / "claims.toml"
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    claims = [Claim(c["id"], c["text"], c["candidate"], c["baseline"], tuple(c["metrics"])) for c in data["claims"]]
    return data.get("description", ""), claims


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


def _paired_row(key: dict, candidate: np.ndarray, baseline: np.ndarray, direction: Literal["lower", "higher"],
                unit: str, seed: int, confidence: float) -> dict:
    comparison = stats.paired_comparison(candidate, baseline, direction=direction, confidence=confidence, seed=seed)
    return {**key, "unit": unit, "n": comparison.n, "direction": direction, "mean_diff": comparison.mean_diff,
            "ci_low": comparison.ci_low, "ci_high": comparison.ci_high, "ci_method": comparison.ci_method,
            "t": comparison.t_stat, "p_t": comparison.p_t, "p_wilcoxon": comparison.p_wilcoxon,
            "wilcoxon_method": comparison.wilcoxon_method, "d_z": comparison.d_z, "sd_diff": comparison.sd_diff}


def add_power(frame: pd.DataFrame, alpha: float, power: float = DEFAULT_POWER) -> pd.DataFrame:
    """Per comparison: the minimum detectable effect (``MDE``, in the metric's units) of the paired t-test
    at the observed spread of the differences and n, and the seeds needed to detect the observed effect.

    Both at ``alpha / m`` (``mde_alpha``), m = the tests in the Holm family: the level the smallest
    p-value must beat, i.e. what a real effect among nulls has to clear.
    """
    if frame.empty:
        return frame
    m = max(int(frame["p_t"].notna().sum()), 1)
    level = alpha / m
    frame["mde_alpha"] = level
    frame["mde_dz"] = [minimum_detectable_effect(int(n), level, power) for n in frame["n"]]
    # All differences equal: no t-test, so no power either (not "any effect is detectable").
    frame["MDE"] = (frame["mde_dz"] * frame["sd_diff"]).where(frame["sd_diff"] > 0)
    frame["seeds_needed"] = [seeds_needed(d, level, power) if np.isfinite(d) else None for d in frame["d_z"]]
    frame["seeds_needed"] = frame["seeds_needed"].astype("Int64")
    return frame


def compare(results: pd.DataFrame, pairs: list[tuple[str, str]], confidence: float = 0.95,
            seed: int = 0) -> pd.DataFrame:
    """Seed-paired comparisons of each candidate with its baseline, Holm-adjusted over the family."""
    rows = []
    for key, group in results.groupby([*GROUP, "metric"]):
        base_key = dict(zip([*GROUP, "metric"], key, strict=True))
        for candidate, baseline in pairs:
            a = group[group["method"] == candidate].set_index("seed")["value"]
            b = group[group["method"] == baseline].set_index("seed")["value"]
            common = sorted(set(a.index) & set(b.index))
            if not common:
                continue
            row = _paired_row({**base_key, "candidate": candidate, "baseline": baseline},
                              a.loc[common].to_numpy(), b.loc[common].to_numpy(), group["direction"].iloc[0],
                              "seed", seed, confidence)
            row["seeds"] = ",".join(map(str, common))
            rows.append(row)
    return _adjust(pd.DataFrame(rows))


def _adjust(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    frame["p_t_adj"] = stats.holm_bonferroni(frame["p_t"].to_numpy(dtype=float))
    frame["p_wilcoxon_adj"] = stats.holm_bonferroni(frame["p_wilcoxon"].to_numpy(dtype=float))
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
                                    seed, confidence))
    return _adjust(pd.DataFrame(rows))


def check_claims(comparisons: pd.DataFrame, claims: list[Claim], alpha: float) -> pd.DataFrame:
    """Each claim x style x metric: supported / contradicted / inconclusive at ``alpha`` after Holm."""
    rows = []
    styles = comparisons[GROUP].drop_duplicates().itertuples(index=False) if not comparisons.empty else []
    for profile, protocol, style in styles:
        for claim in claims:
            for metric in claim.metrics:
                match = comparisons[(comparisons["profile"] == profile) & (comparisons["protocol"] == protocol)
                                    & (comparisons["style"] == style) & (comparisons["metric"] == metric)
                                    & (comparisons["candidate"] == claim.candidate)
                                    & (comparisons["baseline"] == claim.baseline)]
                row = {"claim": claim.id, "text": claim.text, "profile": profile, "protocol": protocol, "style": style,
                       "metric": metric, "candidate": claim.candidate, "baseline": claim.baseline}
                if match.empty:
                    rows.append({**row, "verdict": "not tested", "n": 0, "mean_diff": np.nan, "ci_low": np.nan,
                                 "ci_high": np.nan, "p_t_adj": np.nan, "MDE": np.nan, "seeds_needed": pd.NA})
                    continue
                m = match.iloc[0]
                rows.append({**row, "verdict": stats.verdict(m["mean_diff"], m["p_t_adj"], alpha), "n": m["n"],
                             "mean_diff": m["mean_diff"], "ci_low": m["ci_low"], "ci_high": m["ci_high"],
                             "p_t_adj": m["p_t_adj"], "MDE": m.get("MDE", np.nan),
                             "seeds_needed": m.get("seeds_needed", pd.NA)})
    return pd.DataFrame(rows)


def analyze(data: ReportData, per_image: pd.DataFrame, *, alpha: float = 0.05,
            pairs: list[tuple[str, str]] | None = None, claims_path: Path | None = None,
            seed: int = 0) -> Analysis:
    """Everything the report shows, from the tidy results and the per-image CSD table."""
    description, claims = load_claims(claims_path)
    wanted = list(pairs or DEFAULT_PAIRS)
    for claim in claims:  # claims may need comparisons beyond the default pairs
        if (claim.candidate, claim.baseline) not in wanted:
            wanted.append((claim.candidate, claim.baseline))
    comparisons = add_power(compare(data.results, wanted, seed=seed), alpha)
    per_prompt = add_power(compare_per_prompt(per_image, data.runs, wanted, seed=seed), alpha)
    return Analysis(
        summary=summarize(data.results),
        comparisons=comparisons,
        per_prompt=per_prompt,
        claims=check_claims(comparisons, claims, alpha),
        alpha=alpha,
        claims_description=description,
        warnings=list(data.warnings),
    )
