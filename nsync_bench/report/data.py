"""Report data: finished runs from MLflow as one tidy table.

One row per (run, metric): ``run_id, run_key, experiment, profile, protocol, style, method, seed,
metric, value, direction, implementation, git_sha``. The latest finished run per run key wins.
Numbers from different metric implementations (network, weights, preprocessing, estimator) are
never compared: mixing them is an error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import pandas as pd

from nsync_bench.errors import NsyncBenchError

log = logging.getLogger(__name__)

METRIC_NAMES = ("fid", "kid", "cmmd", "csd")
RUN_COLUMNS = ["run_id", "run_key", "experiment", "profile", "protocol", "style", "method", "seed", "git_sha",
               "start_time"]


class ReportError(NsyncBenchError):
    """The runs cannot be reported as asked (missing, mixed implementations, ...)."""


@dataclass
class ReportData:
    runs: pd.DataFrame  # one row per run: RUN_COLUMNS + libraries, hardware
    results: pd.DataFrame  # tidy: one row per (run, metric)
    warnings: list[str] = field(default_factory=list)
    tracking_uri: str = ""


def _tag(frame: pd.DataFrame, name: str) -> pd.Series:
    column = f"tags.{name}"
    return frame[column] if column in frame else pd.Series([None] * len(frame), index=frame.index)


def load_report_data(tracking_uri: str, experiments: list[str]) -> ReportData:
    """Finished benchmark runs of ``experiments`` (report runs excluded), latest per run key."""
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
    frame = mlflow.search_runs(experiment_ids=ids, filter_string="attributes.status = 'FINISHED'",
                               output_format="pandas")
    if len(frame):
        frame = frame[_tag(frame, "nsync_bench.kind").fillna("run") != "report"]
        frame = frame[_tag(frame, "run_key").notna()]
    if not len(frame):
        raise ReportError(f"no finished runs in experiment(s) {', '.join(experiments)}; run `nsync-bench run` or "
                          "`nsync-bench sweep` first.")
    frame = frame.sort_values("start_time", ascending=False).drop_duplicates("tags.run_key")
    runs = pd.DataFrame({
        "run_id": frame["run_id"],
        "run_key": _tag(frame, "run_key"),
        "experiment": frame["experiment_id"].map(names),
        "profile": _tag(frame, "profile"),
        "protocol": _tag(frame, "protocol"),
        "style": _tag(frame, "style"),
        "method": _tag(frame, "method"),
        "seed": _tag(frame, "seed").astype(int),
        "git_sha": _tag(frame, "git_sha"),
        "start_time": frame["start_time"],
        "libraries": _tag(frame, "libraries"),
        "hardware": _tag(frame, "hardware"),
    }).reset_index(drop=True)
    rows = []
    for _, run in frame.iterrows():
        for metric in METRIC_NAMES:
            value = run.get(f"metrics.metrics/{metric}")
            if value is None or pd.isna(value):
                continue
            direction = str(run.get(f"tags.metric.{metric}.direction") or "")
            rows.append({
                "run_id": run["run_id"], "metric": metric, "value": float(value),
                "std": run.get(f"metrics.metrics/{metric}_std"),
                "direction": "higher" if direction.startswith("higher") else "lower",
                "implementation": run.get(f"tags.metric.{metric}.implementation") or "unknown",
            })
    if not rows:
        raise ReportError("the runs carry no metrics/fid, metrics/kid, metrics/cmmd or metrics/csd; were they "
                          "evaluated with metrics.names empty?")
    results = pd.DataFrame(rows).merge(runs[RUN_COLUMNS], on="run_id")
    data = ReportData(runs, results, tracking_uri=tracking_uri)
    check_implementations(data)
    check_seed_sets(data)
    return data


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
