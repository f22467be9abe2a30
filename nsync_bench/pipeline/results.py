"""A run's end: the adapter and ``result.json`` written whole, read back verified, reconciled with MLflow.

The order at the end of a run, and why (docs/running.md, "After a crash"):

1. the adapter folder appears whole (:func:`save_adapter`, with the sha256 of its weights in
   ``checksums.json``), then metrics, artifacts and the logged model go to MLflow;
2. ``result.json`` is written atomically, recording the metrics and the adapter's sha256: from here
   on the run is finished on disk, and only a result that verifies counts (:func:`check_result`);
3. the checkpoints are removed;
4. ``run.log`` is uploaded and the MLflow run is closed FINISHED.

A crash or a failed upload between 2 and 4 leaves a complete folder whose MLflow run is still
RUNNING (or FAILED). The next ``run``/``sweep`` of the key verifies the result and closes that MLflow
run as FINISHED (:func:`reconcile`), so ``report`` sees it; a result that does not verify (torn,
``{}``, another key, non-finite metrics, an adapter that changed) is set aside and the run recomputed.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nsync_bench.errors import CorruptFileError
from nsync_bench.io import atomic_dir, atomic_write_json, file_sha256, read_json, write_checksums

if TYPE_CHECKING:
    from nsync_bench.methods.base import Method

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
REQUIRED = ("run_key", "metrics", "adapter")


def save_adapter(method: Method, directory: Path) -> Path:
    """The method's adapter written into a temporary folder, its files' sha256 recorded, then renamed
    into place whole; returns the adapter file at its final path."""
    with atomic_dir(directory) as tmp:
        name = method.save_adapter(tmp).name
        write_checksums(tmp, [p.name for p in tmp.iterdir() if p.is_file()])
    return directory / name


def write_result(run_dir: Path, record: dict[str, Any]) -> None:
    """``result.json``, atomically, with the sha256 of the adapter file it names."""
    adapter = run_dir / record["adapter"]
    atomic_write_json(run_dir / RESULT_FILE, {**record, "adapter_sha256": file_sha256(adapter)}, indent=2)


def _problem(record: dict[str, Any], run_dir: Path, key: str) -> str | None:
    if record["run_key"] != key:
        return f"it belongs to run key {record['run_key']!r}, not {key!r}"
    metrics = record["metrics"]
    if not isinstance(metrics, dict) or "eval/num_images" not in metrics:
        return "it holds no evaluation metrics"
    bad = [k for k, v in metrics.items() if not isinstance(v, (int, float)) or not math.isfinite(v)]
    if bad:
        return f"its metrics {bad} are not finite numbers"
    try:  # export and the model card read the run record: a finished run needs a whole one
        config = read_json(run_dir / "config.json", "the run record", "", required=("run_key", "config"))
    except (CorruptFileError, FileNotFoundError) as err:
        return str(err).strip()
    if config["run_key"] != key:
        return f"its run record {run_dir / 'config.json'} belongs to run key {config['run_key']!r}"
    adapter = run_dir / str(record["adapter"])
    if not adapter.is_file():
        return f"its adapter {adapter} is missing"
    expected = record.get("adapter_sha256")  # absent in results written before checksums were recorded
    if expected is not None and file_sha256(adapter) != expected:
        return f"its adapter {adapter} does not match the sha256 recorded with the result"
    return None


def check_result(run_dir: Path, key: str) -> tuple[dict[str, Any] | None, str | None]:
    """``(record, None)`` for a complete result of ``key``; ``(None, why)`` for a bad one; ``(None, None)``
    when there is none. Reads only (a dry run may call it)."""
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None, None
    try:
        record = read_json(path, "the result", "", required=REQUIRED)
    except (CorruptFileError, FileNotFoundError) as err:
        return None, str(err).strip()
    problem = _problem(record, run_dir, key)
    return (None, problem) if problem else (record, None)


def finished_record(run_dir: Path, key: str) -> tuple[dict[str, Any] | None, bool]:
    """``(record, False)`` for the verified result of a finished run, ``(None, False)`` when there is none;
    a result that does not verify is renamed ``result.json.bad-<time>`` (kept for inspection) with a
    warning and ``(None, True)`` returned: the run is recomputed in its folder."""
    record, problem = check_result(run_dir, key)
    if problem is None:
        return record, False
    path = run_dir / RESULT_FILE
    aside = path.with_name(f"{RESULT_FILE}.bad-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, aside)
    log.warning("%s is not a complete result (%s); set aside as %s, the run is recomputed (from its last "
                "checkpoint if one is left)", path, problem.rstrip(". "), aside.name)
    return None, True


def reconcile(record: dict[str, Any], run_dir: Path, tracking_uri: str) -> None:
    """Close the MLflow run of a verified result as FINISHED if a crash left it RUNNING, FAILED or KILLED."""
    from mlflow.entities import Metric

    from nsync_bench.tracking.tracker import check_reachable, client_for

    run_id = record.get("mlflow_run_id")
    if not run_id:
        return
    check_reachable(tracking_uri)  # a dead server is a teaching error here, not minutes of retries
    client = client_for(tracking_uri)
    try:
        run = client.get_run(run_id)
    except Exception as err:
        if getattr(err, "error_code", None) != "RESOURCE_DOES_NOT_EXIST":
            raise
        # not in this store (another --tracking-uri, deleted): the verified folder is what counts
        log.debug("MLflow run %s of %s not found in %s: %s", run_id, run_dir, tracking_uri, err)
        return
    if run.info.status == "FINISHED":
        return
    stamp = int(time.time() * 1000)
    missing = [Metric(k, float(v), stamp, 0) for k, v in record["metrics"].items() if k not in run.data.metrics]
    if missing:
        client.log_batch(run_id, metrics=missing)
    if (run_dir / "run.log").is_file():
        client.log_artifact(run_id, str(run_dir / "run.log"))
    client.set_terminated(run_id, status="FINISHED")
    log.warning("MLflow run %s was %s although %s holds a complete, verified result (the process ended between "
                "writing it and closing the run); closed it as FINISHED", run_id, run.info.status, run_dir)


__all__ = ["RESULT_FILE", "check_result", "finished_record", "reconcile", "save_adapter", "write_result"]
