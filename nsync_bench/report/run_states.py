"""Runs whose MLflow status and run folder disagree, named in the report with the command that fixes them.

A run is FINISHED in MLflow only after its ``result.json`` is written (nsync_bench.pipeline.results).
A process that ends in between leaves a complete folder under a RUNNING (or FAILED, KILLED) MLflow
run, which the report must leave out; the next ``run``/``sweep`` of the key closes it. A RUNNING run
whose process is gone (no live lock) was stopped without closing it (SIGKILL, a lost node); the same
command resumes it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def state_mismatches(unfinished: pd.DataFrame) -> list[str]:
    """One sentence per left-out run whose folder says more than its MLflow status."""
    from nsync_bench.pipeline.locking import RunLock
    from nsync_bench.pipeline.results import check_result

    notes = []
    for row in unfinished.itertuples():
        if not isinstance(row.run_dir, str) or not row.run_dir or not isinstance(row.run_key, str):
            continue
        run_dir = Path(row.run_dir)
        label = f"{row.style}/{row.method}/seed{row.seed}"
        if check_result(run_dir, row.run_key)[0] is not None:
            notes.append(f"{label} is {row.status} in MLflow, but its folder {run_dir} holds a complete, verified "
                         "result (its process ended before closing the MLflow run): run the same `nsync-bench run` or "
                         "`sweep` command again to close it as FINISHED, then report again.")
        elif row.status == "RUNNING" and RunLock(run_dir.parent / f".{run_dir.name}.lock").is_stale():
            notes.append(f"{label} is RUNNING in MLflow, but no process holds its lock: it was stopped without "
                         "closing its run; the same `nsync-bench run` or `sweep` command resumes it.")
    return notes


__all__ = ["state_mismatches"]
