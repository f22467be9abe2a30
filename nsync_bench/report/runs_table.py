"""Report data: finished runs from MLflow as one tidy table.

One row per (run, metric): ``run_id, run_key, experiment, profile, protocol, style, method, seed,
metric, value, direction, implementation, git_sha``. The latest finished run per run key wins.
Metrics are the built-ins of nsync_bench.metrics.registry plus any endpoint a claims file declares
(nsync_bench.report.claims: read from the MLflow metric ``metrics/<name>``, with the declared direction).
Numbers from different metric implementations (network, weights, preprocessing, estimator) are
never compared: mixing them is an error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from nsync_bench.errors import NsyncBenchError
from nsync_bench.metrics.registry import specs
from nsync_bench.report.run_states import state_mismatches
from nsync_bench.tracking import schema

if TYPE_CHECKING:
    from nsync_bench.report.claims import Endpoint

log = logging.getLogger(__name__)

RUN_COLUMNS = ["run_id", "run_key", "experiment", "profile", "protocol", "style", "method", "seed", "git_sha",
               "start_time"]


class ReportError(NsyncBenchError):
    """The runs cannot be reported as asked (missing, mixed implementations, ...)."""


@dataclass
class ReportData:
    runs: pd.DataFrame  # one row per run: RUN_COLUMNS + libraries, hardware, cell, base_method, variant
    results: pd.DataFrame  # tidy: one row per (run, metric)
    warnings: list[str] = field(default_factory=list)
    tracking_uri: str = ""
    # Runs left out because they did not finish (FAILED, RUNNING, KILLED): run_id, status, style, method, seed
    unfinished: pd.DataFrame = field(default_factory=pd.DataFrame)
    # The runs' own metric warnings (FID/KID from fewer images than nsync_bench.pipeline.preflight's minimum),
    # shown beside the summary they qualify rather than among the comparison warnings.
    metric_warnings: list[str] = field(default_factory=list)


def _tag(frame: pd.DataFrame, name: str) -> pd.Series:
    column = schema.column(name)
    return frame[column] if column in frame else pd.Series([None] * len(frame), index=frame.index)


def load_report_data(tracking_uri: str, experiments: list[str],
                     endpoints: Mapping[str, Endpoint] | None = None) -> ReportData:
    """Finished benchmark runs of ``experiments`` (report runs excluded), latest per run key; metrics: the
    built-ins and the declared ``endpoints`` (name -> Endpoint of a claims file)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    ids, names = [], {}
    for name in experiments:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            known = sorted(e.name for e in client.search_experiments())
            raise ReportError(f"no MLflow experiment {name!r} in {tracking_uri}; experiments there: "
                              f"{', '.join(known) or 'none'}.")
        ids.append(experiment.experiment_id)
        names[experiment.experiment_id] = name
    mlflow.set_tracking_uri(tracking_uri)
    frame = mlflow.search_runs(experiment_ids=ids, output_format="pandas")
    if len(frame):
        frame = frame[_tag(frame, schema.KIND).fillna(schema.RUN_KIND) != schema.REPORT_KIND]
        frame = frame[_tag(frame, schema.RUN_KEY).notna()]
    unfinished = _unfinished(frame[frame["status"] != "FINISHED"]) if len(frame) else pd.DataFrame()
    frame = frame[frame["status"] == "FINISHED"] if len(frame) else frame
    frame, bad_seeds = _parse_seeds(frame)
    if not len(frame):
        left_out = f" ({len(unfinished)} run(s) did not finish: {_describe(unfinished)})" if len(unfinished) else ""
        notes = "".join(f" {note}" for note in state_mismatches(unfinished)) if len(unfinished) else ""
        raise ReportError(f"no finished runs in experiment(s) {', '.join(experiments)}{left_out}; run "
                          f"`nsync-bench run` or `nsync-bench sweep` first.{notes}")
    frame = frame.sort_values("start_time", ascending=False).drop_duplicates(schema.column(schema.RUN_KEY))
    runs = pd.DataFrame({
        "run_id": frame["run_id"],
        "run_key": _tag(frame, schema.RUN_KEY),
        "experiment": frame["experiment_id"].map(names),
        "profile": _tag(frame, "profile"),
        "protocol": _tag(frame, "protocol"),
        "style": _tag(frame, "style"),
        "method": _tag(frame, "method"),
        "seed": frame["_seed"],
        "git_sha": _tag(frame, "git_sha"),
        "start_time": frame["start_time"],
        "libraries": _tag(frame, "libraries"),
        "hardware": _tag(frame, "hardware"),
    })
    runs, frame = _cells(frame, runs)
    metric_names = (*specs(), *(endpoints or {}))  # the registry's metrics, then the declared endpoints
    rows = [row for _, run in frame.iterrows() for row in _metric_rows(run, metric_names, endpoints or {})]
    if not rows:
        wanted = ", ".join(f"metrics/{m}" for m in metric_names)
        raise ReportError(f"the runs carry none of {wanted}; were they evaluated with metrics.names empty?")
    results = pd.DataFrame(rows).merge(runs[RUN_COLUMNS], on="run_id")
    data = ReportData(runs, results, tracking_uri=tracking_uri, unfinished=unfinished,
                      metric_warnings=_metric_warnings(frame))
    data.warnings += bad_seeds + _left_out_warnings(unfinished)
    check_implementations(data)
    check_seed_sets(data)
    return data


def _metric_rows(run: pd.Series, metric_names: tuple[str, ...], endpoints: Mapping[str, Endpoint]) -> list[dict]:
    """One row per metric the run logged: built-ins with their logged direction, declared endpoints with the
    declared one (a logged direction tag that disagrees is an error, not a silent choice)."""
    from nsync_bench.report.claims import DECLARED_IMPLEMENTATION

    rows = []
    for metric in metric_names:
        value = run.get(f"metrics.metrics/{metric}")
        if value is None or pd.isna(value):
            continue
        tag = str(run.get(schema.column(schema.metric_tag(metric, schema.DIRECTION))) or "")
        direction = schema.direction_of(tag)
        implementation = run.get(schema.column(schema.metric_tag(metric, schema.IMPLEMENTATION))) or ""
        if metric in endpoints:
            declared = endpoints[metric].direction
            if tag and direction != declared:
                raise ReportError(f"run {run['run_id']} logs metric.{metric}.direction {tag!r}, but the claims file "
                                  f"declares {metric} {declared!r} is better; fix one of them.")
            direction = declared
        rows.append({"run_id": run["run_id"], "metric": metric, "value": float(value),
                     "std": run.get(f"metrics.metrics/{metric}_std"), "direction": direction,
                     "implementation": implementation or (DECLARED_IMPLEMENTATION if metric in endpoints
                                                          else "unknown")})
    return rows


def _parse_seeds(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Seeds as Python ints (any size a tag can hold: no int64 overflow); unreadable ones are left out."""
    seeds: list[int | None] = []
    bad: list[str] = []
    for run_id, text in zip(frame.get("run_id", []), _tag(frame, "seed"), strict=True):
        try:
            seeds.append(int(str(text)))
        except ValueError:
            seeds.append(None)
            bad.append(f"run {run_id} has an unreadable seed tag {text!r}; it is left out.")
    frame = frame.assign(_seed=pd.Series(seeds, index=frame.index, dtype=object))
    return frame[frame["_seed"].notna()], bad


def _cells(frame: pd.DataFrame, runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cells (report.cells), then one run per (cell, seed): the latest (frame is sorted newest first)."""
    from nsync_bench.report.cells import cell_keys, label_cells

    runs = runs.assign(cell=cell_keys(frame, runs))
    keep = ~runs.duplicated(["cell", "seed"])
    frame, runs = frame[keep.to_numpy()], runs[keep]
    runs = label_cells(frame, runs).reset_index(drop=True)
    return runs, frame


def _unfinished(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"run_id": frame["run_id"], "status": frame["status"], "style": _tag(frame, "style"),
                         "method": _tag(frame, "method"), "seed": _tag(frame, "seed"),
                         "run_key": _tag(frame, schema.RUN_KEY),
                         "run_dir": _tag(frame, "run_dir")}).reset_index(drop=True)


def _describe(unfinished: pd.DataFrame, limit: int = 5) -> str:
    items = [f"{r.style}/{r.method}/seed{r.seed} {r.status}" for r in unfinished.head(limit).itertuples()]
    return ", ".join(items) + (f", and {len(unfinished) - limit} more" if len(unfinished) > limit else "")


def _left_out_warnings(unfinished: pd.DataFrame) -> list[str]:
    if unfinished.empty:
        return []
    counts = ", ".join(f"{n} {status}" for status, n in unfinished["status"].value_counts().sort_index().items())
    return [f"left out {len(unfinished)} run(s) that did not finish ({counts}): {_describe(unfinished)}; see "
            "failed_runs.csv and each run's run.log.", *state_mismatches(unfinished)]


def _metric_warnings(frame: pd.DataFrame) -> list[str]:
    """The runs' own metric warnings (e.g. FID/KID from fewer images than the documented minimum)."""
    warnings = []
    for metric in specs():
        column = schema.column(schema.metric_tag(metric, schema.WARNING))
        if column in frame and frame[column].notna().any():
            texts = frame[column].dropna()
            warnings.append(f"{metric}: {len(texts)} run(s) carry a warning, e.g. {texts.iloc[0]}.")
    return warnings


def check_implementations(data: ReportData) -> None:
    """Refuse to compare a metric computed by different implementations or weights."""
    for metric, group in data.results.groupby("metric"):
        implementations = sorted(group["implementation"].unique())
        if len(implementations) > 1:
            counts = group.groupby("implementation")["run_id"].count().to_dict()
            detail = "; ".join(f"{impl!r} ({n} runs)" for impl, n in counts.items())
            raise ReportError(
                f"metric {metric} was computed by {len(implementations)} implementations: {detail}. Numbers from "
                "different extractors, weights or preprocessing are not comparable; report the experiments "
                "separately or rerun them with the same metric settings."
            )


def check_seed_sets(data: ReportData) -> None:
    """Warn when methods of a (profile, protocol, style) have different seeds: pairs use common seeds only."""
    keys = ["profile", "protocol", "style"]
    for group_key, group in data.runs.groupby(keys):
        seed_sets = {m: frozenset(g["seed"]) for m, g in group.groupby("method")}
        if len(set(seed_sets.values())) > 1:
            detail = ", ".join(f"{m}: {sorted(s)}" for m, s in sorted(seed_sets.items()))
            data.warnings.append(f"unequal seed sets for {'/'.join(map(str, group_key))} ({detail}); paired "
                                 "tests use the common seeds only.")


def library_versions(data: ReportData) -> dict[str, list[str]]:
    """Each library's versions across the runs (several versions = a provenance warning)."""
    versions: dict[str, set[str]] = {}
    for text in data.runs["libraries"].dropna():
        for name, version in json.loads(text).items():
            versions.setdefault(name, set()).add(version)
    return {name: sorted(v) for name, v in sorted(versions.items())}
