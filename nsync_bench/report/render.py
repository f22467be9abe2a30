"""Report documents: Markdown and a self-contained HTML page from one document model.

The sections are built once as blocks (paragraphs, bullet lists, tables, figures) and written
twice, so the Markdown and the HTML can never disagree. The HTML inlines its CSS and embeds every
figure as a base64 data URI: ``index.html`` alone is the whole report (mail it, attach it to an
MLflow run). All text that comes from runs is escaped (``html.escape`` / Markdown backslashes).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from nsync_bench.metrics.legacy import inception_mode_note
from nsync_bench.metrics.registry import metric_labels, metric_order
from nsync_bench.report.analysis import Analysis
from nsync_bench.report.document import Block, Cell, Picture, Section, Table
from nsync_bench.report.interpretation import FLOOR_NOTE, POWER_NOTE, fmt, fmt_p, improvement_text, scale_label
from nsync_bench.report.plots import method_order
from nsync_bench.report.reference_rows import REFERENCE_LABEL
from nsync_bench.report.render_claims import claims_blocks
from nsync_bench.report.runs_table import ReportData, library_versions

GROUP = ["profile", "protocol", "style"]
UNITS_NOTE = (
    "Units of analysis. Seed-level comparisons (Summary, Comparisons, Claims) use one number per run, "
    "pairing the candidate and the baseline trained with the same run seed (shared positive batches, noise "
    "and evaluation latents); n is the number of common seeds. Differences are oriented so that a positive "
    "mean difference means the candidate is better, whatever the metric's direction, and are taken on the scale "
    "the claim declares (e.g. log FID: the log of the ratio). CIs of the mean difference are Student-t "
    "intervals below the bootstrap minimum n and BCa bootstrap intervals from there on (see below); the "
    "summary's CIs are Student-t intervals of the mean. Each comparison has the paired t-test, the exact "
    "sign-flip permutation test (every sign pattern up to 20 seeds, Monte Carlo with its standard error beyond) "
    "and the Wilcoxon signed-rank test, Holm-adjusted within its family: the claims file's families, and the "
    "'exploratory' family of comparisons no claim covers. 'Better in k/n seeds' is the probability of "
    "improvement with its exact (Clopper-Pearson) 95% interval. Per-prompt CSD comparisons pair per-image "
    "scores by (seed, evaluation prompt): more pairs and more power, but prompts are not independent "
    "replications of training, so they form a separate Holm family and do not enter the verdicts."
)


@dataclass
class ReportContent:
    title: str
    generated: str
    experiments: list[str]
    data: ReportData
    analysis: Analysis
    plots: list[Picture] = field(default_factory=list)
    grids: list[Picture] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def metric_header(metric: str, direction: str, labels: dict[str, str] | None = None) -> str:
    return f"{(labels or metric_labels()).get(metric, metric.upper())} {'↑' if direction == 'higher' else '↓'}"


def _settings(frame: pd.DataFrame) -> int:
    return len(frame[["profile", "protocol"]].drop_duplicates()) if len(frame) else 0


def summary_sections(summary: pd.DataFrame, reference: pd.DataFrame | None = None,
                     labels: dict[str, str] | None = None) -> list[Section]:
    """Per (profile, protocol, style): methods as rows, metrics as columns, "mean ± half-CI (n)";
    then the real-data floor as a reference row (never starred, never compared)."""
    sections = []
    for (profile, protocol, style), group in summary.groupby(GROUP):
        metrics = metric_order(group["metric"])
        directions = group.groupby("metric")["direction"].first()
        rows = []
        for method in method_order(group["method"].unique()):
            row = [Cell(method)]
            for metric in metrics:
                match = group[(group["method"] == method) & (group["metric"] == metric)]
                if match.empty:
                    row.append(Cell("—"))
                    continue
                m = match.iloc[0]
                half = (m["ci_high"] - m["ci_low"]) / 2
                text = fmt(m["mean"]) + (f" ± {fmt(half)}" if not math.isnan(half) else "") + f" ({int(m['n'])})"
                row.append(Cell(text + (" ★" if m["best"] else ""), bold=bool(m["best"]),
                                cls="best" if m["best"] else ""))
            rows.append(row)
        floor = _floor_row(reference, profile, style, metrics)
        if floor is not None:
            rows.append(floor)
        headers = ["method", *(metric_header(m, directions[m], {**metric_labels(), **(labels or {})}) for m in metrics)]
        sections.append(Section(f"{style} — {profile} / {protocol}", [Table(headers, rows)], level=3))
    return sections


def _floor_row(reference: pd.DataFrame | None, profile: str, style: str, metrics: list[str]) -> list[Cell] | None:
    """"real data (floor)": each metric of real train images vs the test images ("value (n_gen vs n_real)")."""
    if reference is None or reference.empty:
        return None
    part = reference[(reference["profile"] == profile) & (reference["style"] == style)].set_index("metric")
    if part.empty:
        return None
    cells = [Cell(REFERENCE_LABEL, cls="reference")]
    for metric in metrics:
        if metric not in part.index:
            cells.append(Cell("—", cls="reference"))
            continue
        m = part.loc[metric]
        cells.append(Cell(f"{fmt(m['value'])} ({int(m['n_generated'])} vs {int(m['n_real'])} real)", cls="reference"))
    return cells


def comparison_table(frame: pd.DataFrame, alpha: float, labels: dict[str, str] | None = None) -> Table:
    """One row per comparison: effect, CI, the three tests (raw and Holm-adjusted within the family), d_z,
    how often the candidate was better, and the MDE."""
    labels = {**metric_labels(), **(labels or {})}
    several = _settings(frame) > 1
    seed_level = "family" in frame
    headers = [*(["profile / protocol"] if several else []), "style", "metric", "candidate vs baseline",
               *(["family"] if seed_level else []), "n", "mean diff (+ = better)", "95% CI (method)",
               "p t (adj)", *(["p permutation (adj)"] if seed_level else []), "p Wilcoxon (adj)", "d_z",
               "better in", "MDE"]
    rows = []
    for _, c in frame.iterrows():
        significant = not math.isnan(c["p_t_adj"]) and c["p_t_adj"] < alpha
        perm_significant = seed_level and not math.isnan(c["p_perm_adj"]) and c["p_perm_adj"] < alpha
        metric = scale_label(str(c["metric"]), str(c.get("transform", "none")), labels)
        mc = f" ±{fmt(c['perm_mc_se'])} MC" if seed_level and c["perm_method"] == "monte-carlo" else ""
        rows.append([
            *([Cell(f"{c['profile']} / {c['protocol']}")] if several else []),
            Cell(str(c["style"])), Cell(f"{metric} {'↑' if c['direction'] == 'higher' else '↓'}"),
            Cell(f"{c['candidate']} vs {c['baseline']}"), *([Cell(str(c["family"]))] if seed_level else []),
            Cell(str(int(c["n"]))), Cell(fmt(c["mean_diff"], signed=True)),
            Cell(f"[{fmt(c['ci_low'])}, {fmt(c['ci_high'])}] ({c.get('ci_method', 'bca')})"),
            Cell(f"{fmt_p(c['p_t'])} ({fmt_p(c['p_t_adj'])})", bold=significant, cls="sig" if significant else ""),
            *([Cell(f"{fmt_p(c['p_perm'])}{mc} ({fmt_p(c['p_perm_adj'])})", bold=perm_significant,
                    cls="sig" if perm_significant else "")] if seed_level else []),
            Cell(f"{fmt_p(c['p_wilcoxon'])} ({fmt_p(c['p_wilcoxon_adj'])})"), Cell(fmt(c["d_z"])),
            Cell(improvement_text(c["wins"], c["n"], c["pi_low"], c["pi_high"])),
            Cell(fmt(c.get("MDE"))),
        ])
    return Table(headers, rows)


def _count_table(header: str, counts: dict[str, int]) -> Table:
    return Table([header, "runs"], [[Cell(k), Cell(str(v))] for k, v in counts.items()])


def _hardware(text: str) -> str:
    try:
        return ", ".join(f"{k} {v}" for k, v in json.loads(text).items())
    except (TypeError, ValueError):
        return str(text)


def redact(uri: str) -> str:
    """``uri`` without a password (``https://user:secret@host`` -> ``https://user:***@host``)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def provenance_blocks(content: ReportContent) -> list[Block]:
    runs, data = content.data.runs, content.data
    blocks: list[Block] = [[f"experiments: {', '.join(content.experiments)}",
                            f"tracking URI: {redact(data.tracking_uri)}",
                            f"runs: {len(runs)} (the latest finished run per run key)"]]
    blocks.append(_count_table("profile", runs["profile"].value_counts().sort_index().to_dict()))
    blocks.append(_count_table("protocol", runs["protocol"].value_counts().sort_index().to_dict()))
    seed_rows = []
    for (profile, protocol, style), group in runs.groupby(GROUP):
        for method in method_order(group["method"].unique()):
            seeds = sorted(group.loc[group["method"] == method, "seed"])
            seed_rows.append([Cell(f"{style} ({profile} / {protocol})"), Cell(method),
                              Cell(", ".join(map(str, seeds))), Cell(str(len(seeds)))])
    blocks.append(Table(["style", "method", "seeds", "n"], seed_rows, caption="Seeds per method"))
    shas = runs["git_sha"].fillna("unknown").value_counts().to_dict()
    blocks.append(_count_table("git sha", shas))
    versions = library_versions(data)
    blocks.append(Table(["library", "version(s)", "note"], [
        [Cell(name), Cell(", ".join(v)), Cell("⚠ several versions" if len(v) > 1 else "",
                                               cls="inconclusive" if len(v) > 1 else "")]
        for name, v in versions.items()], caption="Library versions"))
    hardware = runs["hardware"].dropna().map(_hardware).value_counts().to_dict()
    blocks.append(_count_table("hardware", hardware or {"not recorded": len(runs)}))
    implementations = data.results.groupby("metric")["implementation"].first()
    blocks.append(Table(["metric", "implementation"], [[Cell(metric_labels().get(m, m)), Cell(i)]
                                                       for m, i in implementations.items()]))
    return blocks


def sections(content: ReportContent) -> list[Section]:
    analysis = content.analysis
    result = [Section("Warnings", [list(content.warnings) if content.warnings else "None."])]
    summary_intro: list[Block] = ["Mean ± half-width of the 95% t-interval over seeds (n seeds). ★ marks the "
                                  "best mean per column; ↓ lower is better, ↑ higher is better.", FLOOR_NOTE,
                                  *[f"⚠ {note}" for note in content.data.metric_warnings]]
    # Every table of a report shares one implementation per metric (data.check_implementations).
    mode_note = inception_mode_note(content.data.results.groupby("metric")["implementation"].first().to_dict())
    if mode_note:
        summary_intro.append(mode_note)
    result.append(Section("Summary", summary_intro))
    labels = {n: e.label for n, e in analysis.claims_file.endpoints.items()} if analysis.claims_file else {}
    result += summary_sections(analysis.summary, analysis.reference, labels)
    comparisons: list[Block] = ["Unit: seed (paired by run seed). Positive differences favour the candidate. "
                                "p-values: raw (Holm-adjusted within the family); bold: adjusted below alpha."]
    comparisons.append(comparison_table(analysis.comparisons, analysis.alpha, labels) if len(analysis.comparisons)
                       else "No pair of methods shares a seed: nothing to compare.")
    result.append(Section("Comparisons", comparisons))
    per_prompt: list[Block] = ["Unit: prompt × seed (per-image CSD, paired by seed and evaluation prompt); "
                               "Holm-adjusted within this table only."]
    per_prompt.append(comparison_table(analysis.per_prompt, analysis.alpha) if len(analysis.per_prompt)
                      else "No per-image CSD scores (eval/per_image_scores.csv) to compare.")
    result.append(Section("Per-prompt CSD comparisons", per_prompt))
    result.append(Section("Claims check", claims_blocks(analysis)))
    result.append(Section("Plots", list(content.plots) or ["No plots."]))
    result.append(Section("Image grids", list(content.grids) or ["No evaluation images to show."]))
    result.append(Section("Provenance", provenance_blocks(content)))
    result.append(Section("Methods note", [UNITS_NOTE, POWER_NOTE, f"Claim verdicts: {analysis.rule}"]))
    return result


def _md(text: str) -> str:
    """Markdown-escaped text (backslash before the characters Markdown would interpret)."""
    return re.sub(r"([\\`*_<>|])", r"\\\1", str(text)).replace("\n", " ")


def _md_block(block: Block) -> str:
    if isinstance(block, str):
        return _md(block)
    if isinstance(block, list):
        return "\n".join(f"- {_md(item)}" for item in block)
    if isinstance(block, Picture):
        caption = f"\n\n{_md(block.caption)}" if block.caption else ""
        return f"**{_md(block.title)}**\n\n![{_md(block.title)}]({block.file}){caption}"
    lines = [f"*{_md(block.caption)}*\n"] if block.caption else []
    lines.append("| " + " | ".join(_md(h) for h in block.headers) + " |")
    lines.append("|" + "---|" * len(block.headers))
    for row in block.rows:
        lines.append("| " + " | ".join(f"**{_md(c.text)}**" if c.bold and c.text else _md(c.text) for c in row) + " |")
    return "\n".join(lines)


def render_markdown(content: ReportContent) -> str:
    head = [f"# {_md(content.title)}", "", f"Generated {content.generated} from experiment(s) "
            f"{_md(', '.join(content.experiments))}.", ""]
    body = [f"{'#' * s.level} {_md(s.title)}\n\n" + "\n\n".join(_md_block(b) for b in s.blocks)
            for s in sections(content)]
    return "\n".join(head) + "\n" + "\n\n".join(body) + "\n"


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1250px;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f0f2f5}tbody tr:nth-child(even){background:#fafafa}
td.best{background:#e8f4ff}td.reference{font-style:italic;color:#444;background:#f4f4f4}td.sig{color:#0b5394}
td.supported{background:#d4edda;color:#155724}td.contradicted{background:#f8d7da;color:#721c24}
td.inconclusive{background:#fff3cd;color:#856404}td.not-tested{background:#e2e3e5;color:#383d41}
td.t-only{background:#eef5e4;color:#3d5a1e}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555}nav{font-size:.9em}nav a{margin-right:.8em}
caption{text-align:left;font-style:italic;padding-bottom:.3em}.meta{color:#555}
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _td(cell: Cell) -> str:
    text = html.escape(cell.text)
    attribute = f' class="{html.escape(cell.cls)}"' if cell.cls else ""
    return f"<td{attribute}>{f'<strong>{text}</strong>' if cell.bold and text else text}</td>"


def _html_block(block: Block) -> str:
    esc = html.escape
    if isinstance(block, str):
        return f"<p>{esc(block)}</p>"
    if isinstance(block, list):
        return "<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block) + "</ul>"
    if isinstance(block, Picture):
        data = base64.b64encode(block.png).decode("ascii")
        caption = f"<figcaption>{esc(block.caption)}</figcaption>" if block.caption else ""
        return (f'<figure><h4>{esc(block.title)}</h4><img src="data:image/png;base64,{data}" '
                f'alt="{esc(block.title)}">{caption}</figure>')
    caption = f"<caption>{esc(block.caption)}</caption>" if block.caption else ""
    head = "".join(f"<th>{esc(h)}</th>" for h in block.headers)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in block.rows)
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(content: ReportContent) -> str:
    parts = sections(content)
    nav = "".join(f'<a href="#{_slug(s.title)}">{html.escape(s.title)}</a>' for s in parts if s.level == 2)
    body = "\n".join(f'<h{s.level} id="{_slug(s.title)}">{html.escape(s.title)}</h{s.level}>\n'
                     + "\n".join(_html_block(b) for b in s.blocks) for s in parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,"><title>{html.escape(content.title)}</title>'
            f"<style>{CSS}</style></head>\n<body>\n<h1>{html.escape(content.title)}</h1>\n"
            f'<p class="meta">Generated {html.escape(content.generated)} from experiment(s) '
            f"{html.escape(', '.join(content.experiments))}.</p>\n<nav>{nav}</nav>\n{body}\n</body></html>\n")


__all__ = ["Cell", "Picture", "ReportContent", "Section", "Table", "render_html",
                          "render_markdown", "sections"]
