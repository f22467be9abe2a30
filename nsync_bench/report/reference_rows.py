"""Reference rows of a report: the real-data floor per (profile, style) and metric.

For each (profile, style) of the reported runs, the floor is read from MLflow (a reference run,
nsync_bench.pipeline.reference) or computed once and logged there, with the runs' own metric settings
(their ``metrics.*`` params) and their number of evaluation images. A floor is shown only for a
metric whose implementation id equals the runs' (the report never compares across
implementations). Reference rows never enter the comparisons.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from nsync_bench.errors import NsyncBenchError
from nsync_bench.report.runs_table import ReportData
from nsync_bench.tracking import schema

log = logging.getLogger(__name__)

REFERENCE_LABEL = "real data (floor)"
COLUMNS = ["profile", "style", "metric", "value", "direction", "implementation", "n_generated", "n_real",
           "reference_run_id"]


def reference_rows(data: ReportData, *, data_root: Path, experiments: list[str],
                   weights_dir: Path | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The floor rows (columns :data:`COLUMNS`) and warnings for floors that could not be had."""
    from mlflow.tracking import MlflowClient

    from nsync_bench.pipeline.reference import ensure_floor, metrics_config_from_params

    client = MlflowClient(data.tracking_uri)
    found = (client.get_experiment_by_name(name) for name in experiments)
    experiment_ids = [e.experiment_id for e in found if e is not None]
    rows, warnings = [], []
    for (profile, style), runs in data.runs.groupby(["profile", "style"]):
        results = data.results[(data.results["profile"] == profile) & (data.results["style"] == style)]
        run = client.get_run(str(runs["run_id"].iloc[0]))
        n_generated = run.data.tags.get(schema.metric_tag("fid", schema.N_GENERATED)) or next(
            (v for k, v in run.data.tags.items() if schema.is_metric_tag(k) and k.endswith("." + schema.N_GENERATED)),
            None)
        try:
            if n_generated is None:
                raise NsyncBenchError("the runs record no metric.<name>.n_generated tag")
            metrics = metrics_config_from_params(run.data.params)
            floor = ensure_floor(data.tracking_uri, str(runs["experiment"].iloc[0]), experiment_ids, style=str(style),
                                 profile=str(profile), metrics=metrics, n_generated=int(n_generated),
                                 data_root=data_root, weights_dir=weights_dir)
        except NsyncBenchError as err:  # e.g. the style's data is not on this machine: say how to get it
            warnings.append(f"no real-data floor for {style} ({profile}): {err}")
            continue
        except Exception as err:  # the floor is a reference row: its failure must not cost the whole report
            log.warning("real-data floor of %s (%s) failed", style, profile, exc_info=True)
            warnings.append(f"no real-data floor for {style} ({profile}): {type(err).__name__}: {err}")
            continue
        for metric, group in results.groupby("metric"):
            implementation = floor.tags.get(schema.metric_tag(metric, schema.IMPLEMENTATION))
            if metric not in floor.values:
                continue
            used = sorted(set(group["implementation"]))
            if implementation not in used:
                warnings.append(f"real-data floor of {style} ({profile}), {metric}: implementation {implementation!r} "
                                f"differs from the runs' ({', '.join(used)}); not shown.")
                continue
            rows.append({"profile": profile, "style": style, "metric": metric, "value": floor.values[metric],
                         "direction": group["direction"].iloc[0], "implementation": implementation,
                         "n_generated": int(floor.tags.get(schema.metric_tag(metric, schema.N_GENERATED), 0)),
                         "n_real": int(floor.tags.get(schema.metric_tag(metric, schema.N_REAL), 0)),
                         "reference_run_id": floor.run_id})
    return pd.DataFrame(rows, columns=COLUMNS), warnings
