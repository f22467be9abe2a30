"""``build_report``: from finished runs in MLflow to a report folder, itself logged to MLflow.

The folder holds ``report.md``, a self-contained ``index.html``, ``figures/*.png`` (the same
figures the HTML embeds), and the tables as CSV (``summary.csv``, ``comparisons.csv``,
``per_prompt.csv``, ``claims.csv``, ``families.csv``) for anyone who wants to redo the analysis. It is
written into a hidden temporary sibling and renamed into place whole: a report killed midway leaves no
folder that looks like a report, and the same ``--out`` works again. Heavy modules
(mlflow, matplotlib) are imported inside :func:`build_report` so that importing
``nsync_bench.report.runs_table`` stays cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nsync_bench.paths import default_experiment
from nsync_bench.progress import NullProgress, Progress
from nsync_bench.report.claims_check import COLUMNS as CLAIM_COLUMNS
from nsync_bench.report.reference_rows import COLUMNS as REFERENCE_COLUMNS
from nsync_bench.report.runs_table import ReportError
from nsync_bench.tracking import schema

if TYPE_CHECKING:
    from nsync_bench.report.analysis import Analysis
    from nsync_bench.report.claims import ClaimsFile
    from nsync_bench.report.render import Picture
    from nsync_bench.report.runs_table import ReportData

log = logging.getLogger(__name__)

_MLFLOW_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
STAGES = 5  # progress: data, per-image scores, analysis, plots, grids
_COMPARISON = ["profile", "protocol", "style", "metric", "candidate", "baseline", "unit", "n", "direction", "transform",
               "mean_diff", "ci_low", "ci_high", "ci_method", "t", "p_t", "p_perm", "perm_method", "perm_mc_se",
               "p_wilcoxon", "wilcoxon_method", "d_z", "sd_diff", "prob_improvement", "pi_low", "pi_high", "wins",
               "ties"]
EMPTY_COLUMNS = {  # the analysis' columns, for tables with no rows
    "summary": ["profile", "protocol", "style", "method", "metric", "direction", "mean", "std", "n", "ci_low",
                "ci_high", "seeds", "best"],
    "comparisons": ["claim", "family", *_COMPARISON, "seeds", "p_t_adj", "p_perm_adj", "p_wilcoxon_adj",
                    "family_size", "test", "level", "mde_dz", "MDE", "sd_low", "sd_high", "effect_kind", "effect",
                    "effect_reason", "effect_dz", "power_at_n", "power_mc_se", "seeds_needed", "seeds_needed_low",
                    "seeds_needed_high"],
    "per_prompt": [*_COMPARISON, "p_t_adj", "p_wilcoxon_adj", "level", "mde_dz", "MDE"],
    "claims": CLAIM_COLUMNS,
    "families": ["profile", "protocol", "family", "claims", "tests", "seeds", "reachable", "note"],
    "reference": REFERENCE_COLUMNS,
}


@dataclass
class ReportResult:
    out_dir: Path
    markdown: Path
    html: Path
    summary_csv: Path
    comparisons_csv: Path
    per_prompt_csv: Path
    claims_csv: Path
    run_id: str | None  # the MLflow report run (None with log_to_mlflow=False)
    analysis: Analysis
    figures: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def default_out_dir(experiments: list[str], now: datetime | None = None) -> Path:
    """``reports/<first experiment>-<UTC timestamp>``: reports never overwrite each other."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / f"{_safe(experiments[0])}-{stamp}"


def _safe(name: str) -> str:
    """A file name that is safe on every file system."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _check_arguments(experiments: list[str], alpha: float | None, pairs: list[tuple[str, str]] | None) -> None:
    if not experiments:
        raise ReportError(f"no experiment given; name at least one, e.g. --experiment {default_experiment('smoke')}.")
    if alpha is not None and not 0.0 < alpha < 1.0:
        raise ReportError(f"alpha must lie strictly between 0 and 1 (e.g. 0.05); got {alpha!r}.")
    for pair in pairs or []:
        if len(pair) != 2 or not all(pair) or pair[0] == pair[1]:
            raise ReportError(f"a comparison is (candidate, baseline) of two different methods; got {pair!r}.")


def _write_figure(out_dir: Path, name: str, png: bytes, title: str, caption: str = "") -> Picture:
    from nsync_bench.report.render import Picture

    path = out_dir / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return Picture(title, f"figures/{name}.png", png, caption)


def _plots(data: ReportData, analysis: Analysis, out_dir: Path) -> list[Picture]:
    """Metric plots per (profile, protocol), then training curves per (profile, protocol, style)."""
    from nsync_bench.metrics.registry import specs
    from nsync_bench.report.artifacts import load_histories
    from nsync_bench.report.plots import curves_figure, method_colors, metric_figure

    colors = method_colors(data.runs["method"].unique())
    pictures = []
    for (profile, protocol), summary in analysis.summary.groupby(["profile", "protocol"]):
        floor = analysis.reference[analysis.reference["profile"] == profile] if len(analysis.reference) else None
        pictures.append(_write_figure(out_dir, _safe(f"metrics-{profile}-{protocol}"),
                                      metric_figure(summary, colors, floor),
                                      f"Metrics per style and method — {profile} / {protocol}",
                                      "Points: mean over seeds; bars: 95% t-interval; hollow points: one seed; "
                                      "black dashes: the real-data floor (real train vs test images)."))
    pictures += _paired_plots(data, analysis, out_dir, colors)
    histories = load_histories(data)
    for (profile, protocol, style), runs in data.runs.groupby(["profile", "protocol", "style"]):
        part = histories[histories["run_id"].isin(runs["run_id"])]
        title = f"Training curves — {style} ({profile} / {protocol})"
        png = curves_figure(part, runs, title, colors)
        if png is None:
            continue
        pictures.append(_write_figure(out_dir, _safe(f"curves-{style}-{profile}-{protocol}"), png, title,
                                      "Thin lines: single seeds; thick lines: mean over seeds at each step."))
    # Learning curves: the metrics scored at eval.at_steps (curve/<metric> against step).
    learning = load_histories(data, keys=tuple(f"curve/{m}" for m in specs()))
    for (profile, protocol, style), runs in data.runs.groupby(["profile", "protocol", "style"]):
        part = learning[learning["run_id"].isin(runs["run_id"])]
        title = f"Learning curves — {style} ({profile} / {protocol})"
        reference = analysis.reference
        if len(reference):
            reference = reference[(reference["profile"] == profile) & (reference["style"] == style)]
        floor = {f"curve/{m}": float(v) for m, v in zip(reference.get("metric", []), reference.get("value", []),
                                                        strict=True)}
        png = curves_figure(part, runs, title, colors, floor)
        if png is not None:
            pictures.append(_write_figure(out_dir, _safe(f"learning-{style}-{profile}-{protocol}"), png, title,
                                          "Each metric scored at the steps of eval.at_steps and at the end. Thin "
                                          "lines: single seeds; thick lines: mean over seeds at each step; dashed (or "
                                          "noted when far off the curves' scale): the real-data floor."))
    return pictures


def _paired_plots(data: ReportData, analysis: Analysis, out_dir: Path, colors: dict[str, str]) -> list[Picture]:
    """Per (profile, protocol, style): each comparison's per-seed differences beside its mean and CI."""
    from nsync_bench.report.paired_plot import paired_figure

    pictures: list[Picture] = []
    if analysis.comparisons.empty:
        return pictures
    for (profile, protocol, style), part in analysis.comparisons.groupby(["profile", "protocol", "style"]):
        results = data.results[(data.results["profile"] == profile) & (data.results["protocol"] == protocol)
                               & (data.results["style"] == style)]
        title = f"Paired differences per seed — {style} ({profile} / {protocol})"
        png = paired_figure(results, part, title, colors)
        if png is not None:
            pictures.append(_write_figure(
                out_dir, _safe(f"paired-{style}-{profile}-{protocol}"), png, title,
                "Dots: one seed's difference between candidate and baseline trained with that seed, oriented so "
                "that + means the candidate is better (baseline − candidate for ↓ metrics), on the scale the claim "
                "declares; shaded: their distribution (from 4 seeds), so clusters show; under each pair, the seeds "
                "in which the candidate was better; diamond and bar: the mean difference and its 95% CI from the "
                "comparisons table; line: no difference."))
    return pictures


@contextlib.contextmanager
def _quiet_mlflow_downloads() -> Iterator[None]:
    """No tqdm bar per downloaded artifact (hundreds of them), unless the user asked for them."""
    previous = os.environ.get(_MLFLOW_BAR)
    os.environ.setdefault(_MLFLOW_BAR, "false")
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_MLFLOW_BAR, None)


def _log_run(tracking_uri: str, experiments: list[str], analysis: Analysis, out_dir: Path) -> str | None:
    from nsync_bench.tracking.tracker import MlflowTracker

    claims = analysis.claims_file
    tags = {**schema.kind_tag(schema.REPORT_KIND), "experiments": ",".join(experiments), "alpha": f"{analysis.alpha:g}",
            "claims_file": str(claims.path) if claims and claims.path else "", "plan": (claims.plan or "") if claims
            else ""}
    tracker = MlflowTracker(tracking_uri, experiments[0], run_name="report", tags=tags)
    try:
        tracker.log_artifact(out_dir)
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")
    return tracker.run_id


def _warnings(data: ReportData, analysis: Analysis, pairs: list[tuple[str, str]] | None) -> list[str]:
    """The analysis' warnings plus what only the report sees: unknown --compare methods, mixed libraries."""
    from nsync_bench.report.runs_table import library_versions

    warnings = list(dict.fromkeys(analysis.warnings))
    methods = set(data.runs["method"])
    for candidate, baseline in pairs or []:
        missing = sorted({candidate, baseline} - methods)
        if missing:
            warnings.append(f"comparison {candidate}:{baseline}: no runs of {', '.join(missing)}; methods present: "
                            f"{', '.join(sorted(methods))}.")
    warnings += [f"{name} has several versions across runs ({', '.join(v)}); numbers may not be comparable."
                 for name, v in library_versions(data).items() if len(v) > 1]
    return warnings


def build_report(experiments: list[str], *, out_dir: Path | None = None, tracking_uri: str | None = None,
                 alpha: float | None = None, log_to_mlflow: bool = True, **options: Any) -> ReportResult:
    """Build the report of ``experiments`` into ``out_dir`` (default: a fresh time-stamped folder), whole or
    not at all; ``options`` are :func:`_build_into`'s. Logged to MLflow once in place."""
    from nsync_bench import paths
    from nsync_bench.io import atomic_dir
    from nsync_bench.paths import usable_dir

    _check_arguments(experiments, alpha, options.get("pairs"))
    final = Path(out_dir) if out_dir is not None else default_out_dir(experiments)
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise ReportError(f"the report folder {final} already exists and is not empty; a report never overwrites "
                          "another. Pass a new --out, or leave it out for a fresh time-stamped folder.")
    usable_dir(final, "the report folder", "Pass another --out.")
    with atomic_dir(final) as staging:
        result = _build_into(experiments, tracking_uri=tracking_uri, out_dir=staging, alpha=alpha,
                             log_to_mlflow=False, **options)

    def moved(path: Path) -> Path:
        return final / path.relative_to(staging)

    result = dataclasses.replace(
        result, out_dir=final, markdown=moved(result.markdown), html=moved(result.html),
        summary_csv=moved(result.summary_csv), comparisons_csv=moved(result.comparisons_csv),
        per_prompt_csv=moved(result.per_prompt_csv), claims_csv=moved(result.claims_csv),
        figures=[moved(p) for p in result.figures])
    if log_to_mlflow:
        result.run_id = _log_run(paths.tracking_uri(tracking_uri), experiments, result.analysis, final)
    return result


def _build_into(
    experiments: list[str],
    *,
    tracking_uri: str | None = None,
    out_dir: Path | None = None,
    alpha: float | None = None,
    pairs: list[tuple[str, str]] | None = None,
    claims: ClaimsFile | str | Path | None = None,
    data_root: Path | None = None,
    log_to_mlflow: bool = True,
    seed: int = 0,
    grid_prompts: int = 4,
    progress: Progress | None = None,
    weights_dir: Path | None = None,
    reference: bool = True,
) -> ReportResult:
    """Load the finished runs of ``experiments``, analyse, render and (optionally) log the report.

    ``pairs`` are the (candidate, baseline) comparisons to make (default: nsync vs ti, nsync-lora vs
    lora); the pairs the claims need are always added. ``claims``: a claims file (loaded, a name in
    baselines/claims/ or a path; default baselines/claims.toml), whose rule, families, effects and
    endpoints the analysis follows; ``alpha`` overrides its declared level (with a warning). ``seed``
    seeds the bootstrap CIs and the Monte Carlo permutation tests, so a report is reproducible from its
    inputs. ``reference``: add the real-data floor per style (read from MLflow, or
    computed from the style's data under ``data_root`` and logged once). Raises :class:`ReportError`
    when the runs cannot be reported.
    """
    from nsync_bench import paths
    from nsync_bench.paths import check_tracking_uri, usable_dir
    from nsync_bench.report.analysis import analyze
    from nsync_bench.report.artifacts import load_per_image
    from nsync_bench.report.claims import ClaimsFile, load_claims
    from nsync_bench.report.grids import build_grids
    from nsync_bench.report.render import ReportContent, render_html, render_markdown
    from nsync_bench.report.runs_table import load_report_data

    _check_arguments(experiments, alpha, pairs)
    claims_file = claims if isinstance(claims, ClaimsFile) else load_claims(claims)
    progress = progress or NullProgress()
    uri = paths.tracking_uri(tracking_uri)
    check_tracking_uri(uri, must_exist=True)  # a mistyped path must not create an empty store
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(experiments)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ReportError(f"the report folder {out_dir} already exists and is not empty; a report never overwrites "
                          "another. Pass a new --out, or leave it out for a fresh time-stamped folder.")
    usable_dir(out_dir, "the report folder", "Pass another --out.")
    work = out_dir / ".work"
    with _quiet_mlflow_downloads():
        data = load_report_data(uri, experiments, claims_file.endpoints)  # fails before anything is written
        shutil.rmtree(out_dir / "figures", ignore_errors=True)  # no stale figures from an earlier report here
        out_dir.mkdir(parents=True, exist_ok=True)
        progress.start("building report", total=STAGES)
        try:
            progress.advance(1)
            from nsync_bench.config.methods import default_pairs
            from nsync_bench.report.cells import variant_pairs

            wanted = list(pairs or default_pairs())  # cells that differ from the plain one pair among themselves
            analysis = analyze(data, load_per_image(data, work), alpha=alpha, claims=claims_file,
                               pairs=wanted + variant_pairs(data.runs, wanted), seed=seed)
            if reference:
                from nsync_bench.report.reference_rows import reference_rows

                analysis.reference, reference_warnings = reference_rows(
                    data, data_root=paths.data_root(data_root), experiments=experiments, weights_dir=weights_dir)
                analysis.warnings += reference_warnings
            progress.advance(2)
            plots = _plots(data, analysis, out_dir)
            progress.advance(1)
            grids, grid_warnings = build_grids(data, work, paths.data_root(data_root), prompts=grid_prompts)
            grid_pictures = [
                _write_figure(out_dir, g.name, g.png, f"{g.style} ({g.profile} / {g.protocol}), run seed {g.seed}",
                              f"First {len(g.prompts)} evaluation prompts: the real test image, then each method's "
                              "image from the same prompt and initial latent.")
                for g in grids]
            progress.advance(1)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            progress.stop()
    warnings = [*_warnings(data, analysis, pairs), *grid_warnings]

    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    content = ReportContent(f"nsync-bench report: {', '.join(experiments)}", generated, list(experiments), data,
                            analysis, plots, grid_pictures, warnings)
    tables = {"summary": analysis.summary, "comparisons": analysis.comparisons, "per_prompt": analysis.per_prompt,
              "claims": analysis.claims, "families": analysis.families, "reference": analysis.reference}
    for name, frame in tables.items():
        if frame.columns.empty:  # nothing to compare: still a CSV with its header, not a 1-byte file
            frame = frame.reindex(columns=EMPTY_COLUMNS[name])
        frame.to_csv(out_dir / f"{name}.csv", index=False)
    if not data.unfinished.empty:  # failed runs never enter the analysis; they are listed here
        data.unfinished.to_csv(out_dir / "failed_runs.csv", index=False)
    (out_dir / "report.md").write_text(render_markdown(content), encoding="utf-8")
    (out_dir / "index.html").write_text(render_html(content), encoding="utf-8")
    run_id = _log_run(uri, experiments, analysis, out_dir) if log_to_mlflow else None
    log.debug("report written to %s%s", out_dir, f" and logged as MLflow run {run_id}" if run_id else "")
    return ReportResult(out_dir, out_dir / "report.md", out_dir / "index.html", out_dir / "summary.csv",
                        out_dir / "comparisons.csv", out_dir / "per_prompt.csv", out_dir / "claims.csv", run_id,
                        analysis, [out_dir / p.file for p in [*plots, *grid_pictures]],
                        [*warnings, *data.metric_warnings])  # the report shows the latter beside the summary


__all__ = ["ReportError", "ReportResult", "build_report", "default_out_dir"]
