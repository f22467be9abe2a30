"""Experiment tracking: MLflow (imported lazily) and a null tracker for library use.

MLflow is the system of record (docs/architecture.md): one experiment per benchmark, one run per
(style, method, seed, ...), tags for the run coordinates, params = the flattened config, step
metrics, final metrics and artifacts. Step metrics are buffered and sent in batches: one SQLite
or HTTP round trip per step would cost more than a smoke training step.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from nsync_bench.errors import NsyncBenchError
from nsync_bench.io import disk_full_error
from nsync_bench.paths import artifact_root, sqlite_file
from nsync_bench.tracking.schema import RUN_KEY, finished_filter

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


# MLflow's HTTP client retries a dead server 7 times with exponential backoff and a 120 s timeout per
# try: a run would hang for ~10 minutes before failing. These make it fail within a minute (3 tries of
# at most 15 s each, 1-2 s apart); a user's own settings of the same variables win.
FAIL_FAST_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


class TrackingError(NsyncBenchError):
    """The MLflow store stopped answering during a run: the run stops (resumable), it does not hang."""

    exit_code = 1


@cache
def client_for(tracking_uri: str) -> Any:
    """One ``MlflowClient`` per store and process (a run looks up, creates and logs through the same one),
    one that gives up on a dead server within a minute (:data:`FAIL_FAST_ENV`)."""
    import os

    from mlflow.tracking import MlflowClient

    for name, value in FAIL_FAST_ENV.items():
        os.environ.setdefault(name, value)
    with _store_init_lock(tracking_uri):
        return MlflowClient(tracking_uri=tracking_uri)


@contextlib.contextmanager
def _store_init_lock(tracking_uri: str) -> Iterator[None]:
    """Hold an exclusive lock beside a SQLite store while this process opens it.

    Opening a SQLite store (``MlflowClient(...)`` does) creates or migrates it, and two processes doing so
    at once clash (Alembic: "table _alembic_tmp_experiments already exists", "duplicate column name"): two
    `nsync-bench run` started together on a new store failed one of them. The first process to hold
    ``<db>.init-lock`` creates the store; the others wait, then find its schema current. A server migrates
    its own store; nothing to do for one.
    """
    db = sqlite_file(tracking_uri)
    if db is None or not db.parent.is_dir():
        yield  # not SQLite, or a missing folder the store's own error names (paths.check_tracking_uri)
        return
    import fcntl

    try:
        lock = open(db.with_name(db.name + ".init-lock"), "a")  # noqa: SIM115 - held across the yield
    except OSError:  # a read-only folder (a shared store opened to read): nothing here can migrate it anyway
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


_client = client_for


_UNREACHABLE = ("API request to", "database is locked", "unable to open database", "timed out")


def tracking_failure(err: BaseException) -> bool:
    """Whether ``err`` means the store cannot be reached (a dead server, a locked or vanished SQLite file),
    as opposed to a request the store refused, which stays an ordinary error."""
    if isinstance(err, OSError):
        return True
    names = {cls.__module__.split(".")[0] for cls in type(err).__mro__}
    if names & {"requests", "urllib3"}:
        return True
    return bool(names & {"mlflow", "sqlalchemy"}) and any(marker in str(err) for marker in _UNREACHABLE)


def _short_reason(err: BaseException) -> str:
    """One line out of MLflow's multi-line, URL-laden messages: the OS error when there is one."""
    import re

    text = " ".join(str(err).split())
    found = re.search(r"\[Errno -?\d+\] ([^\"')]+)", text) or re.search(r"(timed out|[Tt]imeout)", text)
    return found.group(1).strip() if found else text[:160]


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
    from nsync_bench.tracking.mlflow_ui import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

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
        filter_string=finished_filter(RUN_KEY, run_key),
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
        if run_id is not None and self._exists(run_id):
            self.client.update_run(run_id, status="RUNNING")
            self.run_id = run_id
        else:
            run = self.client.create_run(experiment_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()})
            self.run_id = run.info.run_id
        self._pending: list[Any] = []
        self._monitor = None
        self._failed: str | None = None  # why the store stopped answering, once it has
        if system_metrics:
            from nsync_bench.tracking.mlflow_ui import start_system_metrics

            self._monitor = start_system_metrics(self.run_id, tracking_uri, resume=run_id is not None)

    def _exists(self, run_id: str) -> bool:
        """Whether the run a folder remembers is in this store (not after a change of --tracking-uri)."""
        try:
            self.client.get_run(run_id)
        except Exception as err:
            if getattr(err, "error_code", None) != "RESOURCE_DOES_NOT_EXIST":
                raise
            log.warning("MLflow run %s is not in %s; logging to a new run", run_id, self.tracking_uri)
            return False
        return True

    def _call(self, action: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        """One client call; a store that stopped answering becomes one :class:`TrackingError`, after
        which the tracker does nothing (closing the run would only wait for the same dead server)."""
        if self._failed is not None:
            return None
        try:
            return func(*args, **kwargs)
        except Exception as err:
            full = disk_full_error(err, (artifact_root(self.tracking_uri) or ".").removeprefix("file://"))
            if full is not None:  # a local store's disk, not a dead server
                raise full from None
            if not tracking_failure(err):
                raise
            self._failed = _short_reason(err)
            if self._monitor is not None:
                self._monitor = None  # its daemon thread dies with the process; finishing it would log again
            raise TrackingError(
                f"the MLflow store {self.tracking_uri} stopped answering while {action} ({self._failed}); the run "
                "stopped there instead of waiting. Restart the tracking server (or fix --tracking-uri / "
                "MLFLOW_TRACKING_URI) and run the same command again: it resumes from the run's last checkpoint "
                "and logs to the same MLflow run.") from None

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        run = self._call("reading the run", self.client.get_run, self.run_id)
        existing = run.data.params if run is not None else {}
        items = [Param(k, str(v)[:_PARAM_MAX_LEN]) for k, v in params.items() if k not in existing]
        for start in range(0, len(items), _PARAM_BATCH):
            self._call("logging params", self.client.log_batch, self.run_id,
                       params=items[start : start + _PARAM_BATCH])

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        for start in range(0, len(items), _PARAM_BATCH):  # one store transaction per 100 tags, not one per tag
            self._call("setting tags", self.client.log_batch, self.run_id, tags=items[start : start + _PARAM_BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self._pending.extend(Metric(k, float(v), stamp, step or 0) for k, v in metrics.items())
        if len(self._pending) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        while self._pending and self._failed is None:
            chunk, self._pending = self._pending[:1000], self._pending[1000:]
            self._call("logging metrics", self.client.log_batch, self.run_id, metrics=chunk)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if path.is_dir():
            self._call(f"uploading {path.name}/", self.client.log_artifacts, self.run_id, str(path), artifact_path)
        else:
            self._call(f"uploading {path.name}", self.client.log_artifact, self.run_id, str(path), artifact_path)

    def log_inputs(self, identity: dict[str, dict[str, str]]) -> None:
        from nsync_bench.tracking.mlflow_ui import log_dataset_inputs

        self._call("logging the datasets", log_dataset_inputs, self.client, self.run_id, identity)

    def log_model(self, name: str, metrics: dict[str, float], dataset: dict[str, str] | None,
                  tags: dict[str, Any]) -> None:
        from nsync_bench.tracking.mlflow_ui import log_adapter_model

        self._call("logging the model", log_adapter_model, self.client, self.experiment_id, self.run_id, name,
                   metrics, dataset, {k: str(v) for k, v in tags.items()})

    def finish(self, status: str = "FINISHED") -> None:
        if self._monitor is not None:
            self._monitor.finish()  # its last samples are logged before the run ends
            self._monitor = None
        self.flush()
        self._call("closing the run", self.client.set_terminated, self.run_id, status=status)
