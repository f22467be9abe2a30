"""Experiment tracking: MLflow (imported lazily) and a null tracker for library use.

MLflow is the system of record (docs/architecture.md): one experiment per benchmark, one run per
(style, method, seed, ...), tags for the run coordinates, params = the flattened config, step
metrics, final metrics and artifacts. Step metrics are buffered and sent in batches: one SQLite
or HTTP round trip per step would cost more than a smoke training step.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from nsync_bench.errors import NsyncBenchError
from nsync_bench.paths import artifact_root

log = logging.getLogger(__name__)

_FLUSH_EVERY = 200  # buffered metric values before a batch write
_PARAM_BATCH = 100  # MLflow accepts at most 100 params per batch call
_PARAM_MAX_LEN = 6000


class Tracker(Protocol):
    @property
    def run_id(self) -> str | None: ...  # read-only here: a tracker may hold a plain str

    def log_params(self, params: dict[str, Any]) -> None: ...

    def set_tags(self, tags: dict[str, Any]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...

    def log_inputs(self, identity: dict[str, dict[str, str]]) -> None: ...

    def log_model(self, name: str, metrics: dict[str, float], dataset: dict[str, str] | None,
                  tags: dict[str, Any]) -> None: ...

    def flush(self) -> None: ...

    def finish(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Tracks nothing; the default when a library caller does not ask for MLflow."""

    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def set_tags(self, tags: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass

    def log_inputs(self, identity: dict[str, dict[str, str]]) -> None:
        pass

    def log_model(self, name: str, metrics: dict[str, float], dataset: dict[str, str] | None,
                  tags: dict[str, Any]) -> None:
        pass

    def flush(self) -> None:
        pass

    def finish(self, status: str = "FINISHED") -> None:
        pass


@cache
def _client(tracking_uri: str) -> Any:
    """One MLflow client per store and process (a run looks up, creates and logs through the same one)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def check_reachable(tracking_uri: str, timeout: float = 10.0) -> None:
    """Fail fast on a dead tracking server: MLflow's own client retries for minutes before giving up."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout):  # noqa: S310
            return
    except (urllib.error.URLError, OSError) as err:
        raise NsyncBenchError(
            f"the MLflow tracking server {tracking_uri} does not answer ({err}). Start it (see docs/scale.md, "
            "'MLflow at scale'), fix --tracking-uri / MLFLOW_TRACKING_URI, or drop them to use the local "
            "SQLite store ./mlflow.db. Nothing was trained."
        ) from err


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """The id of experiment ``name``, created (with a local artifact root for SQLite) if missing.

    Marked as a model-training experiment, so MLflow 3's UI opens it on the runs table rather than on
    its GenAI overview.
    """
    from nsync_bench.tracking.inputs import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

    check_reachable(tracking_uri)
    client = _client(tracking_uri)
    try:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            if EXPERIMENT_KIND_TAG not in experiment.tags:  # made by an older nsync-bench or by hand
                client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            return experiment.experiment_id
        return client.create_experiment(name, artifact_location=artifact_root(tracking_uri),
                                        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except Exception as err:  # mlflow raises many types (MlflowException, requests errors, ...)
        raise NsyncBenchError(
            f"cannot reach the MLflow store {tracking_uri!r}: {err}. Start the server, fix --tracking-uri / "
            "MLFLOW_TRACKING_URI, or drop them to use the local SQLite store ./mlflow.db."
        ) from err


def find_finished_run(tracking_uri: str, experiment: str, run_key: str) -> Any | None:
    """The newest FINISHED run of ``experiment`` tagged ``run_key`` (so sweeps skip it), or None."""
    check_reachable(tracking_uri)
    client = _client(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.run_key = '{run_key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


class MlflowTracker:
    """One MLflow run, new or resumed (``run_id``), written through ``MlflowClient``."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        run_name: str,
        tags: dict[str, Any],
        run_id: str | None = None,
        system_metrics: bool = False,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.client = _client(tracking_uri)
        experiment_id = self.experiment_id = ensure_experiment(tracking_uri, experiment)
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            self.run_id = run_id
        else:
            run = self.client.create_run(experiment_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()})
            self.run_id = run.info.run_id
        self._pending: list[Any] = []
        self._monitor = None
        if system_metrics:
            from nsync_bench.tracking.inputs import start_system_metrics

            self._monitor = start_system_metrics(self.run_id, tracking_uri, resume=run_id is not None)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        items = [Param(k, str(v)[:_PARAM_MAX_LEN]) for k, v in params.items() if k not in existing]
        for start in range(0, len(items), _PARAM_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + _PARAM_BATCH])

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        for start in range(0, len(items), _PARAM_BATCH):  # one store transaction per 100 tags, not one per tag
            self.client.log_batch(self.run_id, tags=items[start : start + _PARAM_BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self._pending.extend(Metric(k, float(v), stamp, step or 0) for k, v in metrics.items())
        if len(self._pending) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        while self._pending:
            chunk, self._pending = self._pending[:1000], self._pending[1000:]
            self.client.log_batch(self.run_id, metrics=chunk)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_inputs(self, identity: dict[str, dict[str, str]]) -> None:
        from nsync_bench.tracking.inputs import log_dataset_inputs

        log_dataset_inputs(self.client, self.run_id, identity)

    def log_model(self, name: str, metrics: dict[str, float], dataset: dict[str, str] | None,
                  tags: dict[str, Any]) -> None:
        from nsync_bench.tracking.inputs import log_adapter_model

        log_adapter_model(self.client, self.experiment_id, self.run_id, name, metrics, dataset,
                          {k: str(v) for k, v in tags.items()})

    def finish(self, status: str = "FINISHED") -> None:
        if self._monitor is not None:
            self._monitor.finish()  # its last samples are logged before the run ends
            self._monitor = None
        self.flush()
        self.client.set_terminated(self.run_id, status=status)
