"""``nsync-bench report``: tables, tests, claims check, plots and image grids from finished runs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from nsync_bench.cli.app import app, console
from nsync_bench.cli.options import DataRootOption, TrackingUriOption
from nsync_bench.errors import NsyncBenchError
from nsync_bench.paths import default_experiment

if TYPE_CHECKING:
    from nsync_bench.report.build import ReportResult

# ruff: noqa: UP045 - typer needs Optional

DEFAULT_EXPERIMENT = default_experiment("smoke")
VERDICT_STYLES = {"supported": "green", "supported (t only)": "green", "contradicted": "red",
                  "contradicted (t only)": "red", "inconclusive": "yellow", "not tested": "dim"}


def parse_pairs(values: list[str] | None) -> list[tuple[str, str]] | None:
    """``CAND:BASE`` strings as (candidate, baseline) pairs; a teaching error for anything else."""
    if not values:
        return None
    pairs = []
    for value in values:
        candidate, sep, baseline = value.partition(":")
        if not sep or not candidate.strip() or not baseline.strip() or ":" in baseline:
            raise NsyncBenchError(f"--compare expects CANDIDATE:BASELINE, e.g. --compare nsync:ti; got {value!r}.")
        pairs.append((candidate.strip(), baseline.strip()))
    return pairs


def print_summary(result: ReportResult) -> None:
    """Verdict counts, a condensed comparison table and the files written."""
    from rich.table import Table

    from nsync_bench.report.interpretation import fmt, fmt_p

    analysis = result.analysis
    claims = analysis.claims
    if len(claims):
        counts = claims["verdict"].value_counts()
        parts = [f"[{style}]{verdict} {int(counts.get(verdict, 0))}[/]" for verdict, style in VERDICT_STYLES.items()]
        console.print("[bold]claims[/]: " + ", ".join(parts), soft_wrap=True)
        console.print(f"rule: {analysis.rule}", soft_wrap=True, highlight=False)
    comparisons = analysis.comparisons
    if len(comparisons):
        table = Table("style", "metric", "n", "diff (+ better)", "p adj t | perm",
                      title="seed-paired comparisons (Holm within each family; * exploratory)", title_justify="left")
        table.add_column("candidate vs baseline", no_wrap=True)
        for _, c in comparisons.iterrows():
            significant = not math.isnan(c["p_t_adj"]) and c["p_t_adj"] < analysis.alpha
            diff = fmt(c["mean_diff"], signed=True)
            if significant:
                diff = f"[{'green' if c['mean_diff'] > 0 else 'red'}]{diff}[/]"
            star = " *" if c["family"] == "exploratory" else ""
            table.add_row(str(c["style"]), str(c["metric"]).upper(), str(int(c["n"])), diff,
                          f"{fmt_p(c['p_t_adj'])} | {fmt_p(c['p_perm_adj'])}",
                          f"{c['candidate']} vs {c['baseline']}{star}")
        console.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True, highlight=False)
    files = Table.grid(padding=(0, 2))
    files.add_column(no_wrap=True)
    files.add_column(overflow="fold")
    for label, path in (("html", result.html), ("markdown", result.markdown), ("summary", result.summary_csv),
                        ("comparisons", result.comparisons_csv), ("per-prompt", result.per_prompt_csv),
                        ("claims", result.claims_csv), ("families", result.out_dir / "families.csv")):
        files.add_row(label, str(path))
    if result.run_id:
        from nsync_bench.tracking.schema import KIND, REPORT_KIND

        files.add_row("mlflow run", f"{result.run_id} (tag {KIND}={REPORT_KIND})")
    console.print(f"[bold green]report written to {result.out_dir}[/]")
    console.print(files, soft_wrap=True)


@app.command()
def report(
    experiments: Annotated[Optional[list[str]], typer.Option(
        "--experiment", help=f"MLflow experiment to report (repeatable; default {DEFAULT_EXPERIMENT}).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        help="Report folder (default reports/<experiment>-<UTC time>).")] = None,
    alpha: Annotated[Optional[float], typer.Option(
        help="Override the claims file's declared alpha (a warning says so; default: the file's).")] = None,
    claims: Annotated[Optional[str], typer.Option(
        help="Claims file: a name in baselines/claims/ or a path (default baselines/claims.toml).")] = None,
    compare: Annotated[Optional[list[str]], typer.Option(
        help="Extra comparison CANDIDATE:BASELINE, e.g. mymethod:lora (repeatable).")] = None,
    tracking_uri: TrackingUriOption = None,
    data_root: DataRootOption = None,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Do not log the report as an MLflow run.")] = False,
) -> None:
    """Summaries with CIs, paired tests across seeds, the paper's claims, plots and image grids.

    Writes report.md, a self-contained index.html and CSV tables, and logs them to MLflow.
    """
    extra = parse_pairs(compare)
    from nsync_bench.cli.progress import RichProgress
    from nsync_bench.config.methods import default_pairs
    from nsync_bench.report.build import build_report

    pairs = list(dict.fromkeys([*default_pairs(), *extra])) if extra else None  # --compare adds to the defaults

    result = build_report(experiments or [DEFAULT_EXPERIMENT], tracking_uri=tracking_uri, out_dir=out, alpha=alpha,
                          pairs=pairs, claims=claims, data_root=data_root, log_to_mlflow=not no_mlflow,
                          progress=RichProgress())
    print_summary(result)
