"""The report's claims section: the declared rule, the families, the declared effects, then each verdict.

Everything a reader needs to judge a verdict is printed beside it: the rule it was judged by, the
family it was adjusted in (and whether an exact test could reach alpha there at all), the smallest
effect the plan cared about and why, the adjusted p-values of both tests, how many seeds improved,
and what the comparison could have detected.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nsync_bench.metrics.registry import metric_labels
from nsync_bench.paths import shipped_dir
from nsync_bench.report.analysis import Analysis
from nsync_bench.report.claims import EXPLORATORY
from nsync_bench.report.document import Block, Cell, Table
from nsync_bench.report.interpretation import (
    effect_text,
    fmt,
    fmt_p,
    improvement_text,
    inconclusive_text,
    power_text,
    scale_label,
)
from nsync_bench.stats.rule import VERDICTS

VERDICT_CLASSES = {"supported": "supported", "supported (t only)": "t-only", "contradicted": "contradicted",
                   "contradicted (t only)": "t-only", "inconclusive": "inconclusive", "not tested": "not-tested"}


def _labels(analysis: Analysis) -> dict[str, str]:
    endpoints = analysis.claims_file.endpoints if analysis.claims_file else {}
    return {**metric_labels(), **{name: e.label for name, e in endpoints.items()}}


def _several(frame: pd.DataFrame) -> bool:
    return len(frame[["profile", "protocol"]].drop_duplicates()) > 1 if len(frame) else False


def _shown_path(path: Path | None) -> str:
    """The claims file relative to the repository root when it lives there (baselines/claims.toml)."""
    if path is None:
        return "(given in code)"
    try:
        return path.resolve().relative_to(shipped_dir("baselines").parent.resolve()).as_posix()
    except ValueError:
        return str(path)


def header_blocks(analysis: Analysis) -> list[Block]:
    """The description, the file and the plan it answers, the rule."""
    claims = analysis.claims_file
    blocks: list[Block] = []
    if analysis.claims_description:
        blocks.append(f"The claims under test: {analysis.claims_description}")
    if claims is not None:
        where = _shown_path(claims.path)
        plan = f"it answers the plan {claims.plan}" if claims.plan else "it names no plan (declare plan = \"...\")"
        blocks.append(f"Claims file: {where}; {plan}.")
    blocks.append(f"Rule: {analysis.rule}")
    return blocks


def family_blocks(analysis: Analysis) -> list[Block]:
    families = analysis.families
    if families.empty:
        return []
    several = _several(families)
    rows = []
    for _, f in families.iterrows():
        reach = "yes" if f["reachable"] else f"no: {f['note']}"
        label = f"{f['family']} (exploratory: adjusted among themselves, no verdicts)" \
            if f["family"] == EXPLORATORY else str(f["family"])
        rows.append([*([Cell(f"{f['profile']} / {f['protocol']}")] if several else []), Cell(label),
                     Cell(str(f["claims"])), Cell(str(f["tests"])), Cell(str(f["seeds"])),
                     Cell(fmt_p(analysis.alpha / max(int(f["tests"]), 1))),
                     Cell(reach, cls="" if f["reachable"] else "inconclusive")])
    headers = [*(["profile / protocol"] if several else []), "family", "claims", "tests (m)", "seeds",
               "alpha/m (Holm's first step)", "can the rule's exact test reach alpha?"]
    return [Table(headers, rows, caption="Families: Holm adjusts the p-values within each")]


def effect_blocks(analysis: Analysis) -> list[Block]:
    claims = analysis.claims_file
    if claims is None:
        return []
    labels = _labels(analysis)
    rows = [[Cell(c.id), Cell(scale_label(metric, c.transform(metric), labels)),
             Cell(effect_text(c.effects[metric].kind, c.effects[metric].value)), Cell(c.effects[metric].reason)]
            for c in claims.claims for metric in c.metrics]
    return [Table(["claim", "metric (scale)", "smallest effect of interest", "reason"], rows,
                  caption="Declared smallest effects of interest (raw: metric units on the analysis scale, + = "
                          "candidate better)")]


def _evidence(c: pd.Series) -> str:
    if c["verdict"] == "not tested":
        return f"no runs of both {c['candidate']} and {c['baseline']} here"
    return (f"diff {fmt(c['mean_diff'], signed=True)}, 95% CI [{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]; "
            f"p adj: t {fmt_p(c['p_t_adj'])}, permutation {fmt_p(c['p_perm_adj'])} ({c['perm_method']}); "
            f"better in {improvement_text(c['wins'], c['n'], c['pi_low'], c['pi_high'])}")


def claims_blocks(analysis: Analysis) -> list[Block]:
    claims = analysis.claims
    blocks = [*header_blocks(analysis), *family_blocks(analysis), *effect_blocks(analysis)]
    if claims.empty:
        return [*blocks, "No claim could be checked: no comparisons."]
    counts = claims["verdict"].value_counts()
    blocks.append("Verdicts: " + ", ".join(f"{v} {int(counts.get(v, 0))}" for v in VERDICTS) + ".")
    several = _several(claims)
    labels = _labels(analysis)
    rows = []
    for _, c in claims.iterrows():
        verdict = str(c["verdict"])
        shown = verdict
        if verdict == "inconclusive":
            shown = inconclusive_text(c.get("MDE"), int(c["n"]), c.get("seeds_needed"))
        style = f"{c['style']} ({c['profile']} / {c['protocol']})" if several else str(c["style"])
        rows.append([Cell(f"{c['text']} [{c['claim']}]"), Cell(style),
                     Cell(scale_label(str(c["metric"]), str(c.get("transform") or "none"), labels)),
                     Cell(shown, bold=True, cls=VERDICT_CLASSES.get(verdict, "")), Cell(_evidence(c)),
                     Cell(power_text(c) if verdict != "not tested" else "—")])
    return [*blocks, Table(["claim", "style", "metric (scale)", "verdict", "evidence", "power"], rows)]
