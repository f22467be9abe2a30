"""The run's side of the MLflow helper process (:mod:`nsync_bench.tracking.sidecar`), and the choice
between it and in-process tracking.

MLflow's client pulls in SQLAlchemy, Alembic, pandas, scipy and FastAPI: about 2 s of imports before a
run can log anything, twice the 10-step smoke run's training (docs/scale.md, "Start-up").
``nsync-bench run`` therefore starts the helper first thing (:func:`start`): it imports MLflow on
another core while the run imports torch and diffusers and builds its model, then does the run's
MLflow calls. The run talks to it through :class:`RemoteTracker` (the
:class:`~nsync_bench.tracking.tracker.Tracker` protocol) and :func:`find_finished_run`, one JSON line
per call over the helper's stdin/stdout. Params, tags, dataset inputs and step metrics go without
waiting for an answer (the run builds its model and trains meanwhile; a ping every 10 s of step metrics
surfaces their errors); the finished-run lookup,
opening the run, artifacts, the logged model and finishing wait, and report any earlier error too, so
an error (an unreachable store, a failed write) stops the run before its result is written, with
MLflow's message.

Library callers and sweep workers (which import MLflow once for many runs) track in-process:
:func:`open_tracker` and :func:`find_finished_run` use the helper only where one was started.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from nsync_bench.errors import NsyncBenchError

log = logging.getLogger(__name__)

HELPER = "nsync_bench.tracking.sidecar"
_CURRENT: dict[str, Sidecar] = {}  # tracking URI -> the helper of this process


class SidecarError(NsyncBenchError):
    """The helper process failed or went away."""


class Sidecar:
    """The run's end of the helper process (one per tracking URI and process)."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._lock = threading.Lock()
        self._process = subprocess.Popen(  # our own module, with this interpreter
            [sys.executable, "-m", HELPER, tracking_uri],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1,
            start_new_session=True)  # a terminal's Ctrl-C is the run's to handle, not the helper's

    def call(self, op: str, *args: Any, wait: bool = True) -> Any:
        """Run ``op`` in the helper; with ``wait``, return its result or raise its error."""
        message = json.dumps({"op": op, "args": args, "wait": wait}, default=str) + "\n"
        with self._lock:
            stdin, stdout = self._process.stdin, self._process.stdout
            assert stdin is not None and stdout is not None  # both are pipes (see __init__)
            try:
                stdin.write(message)
                if not wait:
                    return None
                answer = stdout.readline()
            except (BrokenPipeError, OSError) as err:
                raise SidecarError(f"the MLflow helper process for {self.tracking_uri} went away ({err}); "
                                   "the run's MLflow record may be incomplete. Rerun the same command.") from err
        if not answer:
            code = self._process.poll()
            raise SidecarError(f"the MLflow helper process for {self.tracking_uri} exited (code {code}); see the "
                               "messages above. Rerun the same command.")
        reply = json.loads(answer)
        if "error" in reply:
            if reply.get("tracking"):  # the store stopped answering: the trainer checkpoints and stops
                from nsync_bench.tracking.tracker import TrackingError

                raise TrackingError(reply["error"])
            if reply.get("teaching"):
                raise NsyncBenchError(reply["error"])
            raise SidecarError(f"MLflow ({self.tracking_uri}): {reply['error']}")
        return reply.get("result")

    def close(self) -> None:
        """Let the helper finish (it exits at end of input); do not wait for its interpreter to shut down."""
        _CURRENT.pop(self.tracking_uri, None)
        if self._process.stdin is not None and not self._process.stdin.closed:
            with contextlib.suppress(OSError):  # already gone: nothing left to tell it
                self._process.stdin.close()


def start(tracking_uri: str) -> Sidecar | None:
    """Start this process's helper for ``tracking_uri`` (it begins importing MLflow at once)."""
    if tracking_uri not in _CURRENT:
        try:
            _CURRENT[tracking_uri] = Sidecar(tracking_uri)
        except OSError as err:  # no helper: the run imports MLflow itself, as before
            log.warning("could not start the MLflow helper process (%s); logging in this process", err)
            return None
    return _CURRENT[tracking_uri]


def current(tracking_uri: str) -> Sidecar | None:
    """The helper started for ``tracking_uri`` in this process, if any."""
    return _CURRENT.get(tracking_uri)


def stop_all() -> None:
    for sidecar in list(_CURRENT.values()):
        sidecar.close()


def find_finished(sidecar: Sidecar, experiment: str, run_key: str) -> Any | None:
    """:func:`~nsync_bench.tracking.tracker.find_finished_run` through the helper: ``.info.run_id`` and
    ``.data.metrics`` of the newest finished run with ``run_key``, or None."""
    found = sidecar.call("find_finished_run", experiment, run_key)
    if found is None:
        return None
    return SimpleNamespace(info=SimpleNamespace(run_id=found["run_id"]), data=SimpleNamespace(metrics=found["metrics"]))


class RemoteTracker:
    """A :class:`~nsync_bench.tracking.tracker.MlflowTracker` living in the helper process."""

    # Step metrics do not wait, but at most this many seconds pass between two calls that do: a store that
    # stops answering mid-training stops the run within a minute (as in-process tracking does), not after it.
    PING_EVERY_S = 10.0

    def __init__(self, sidecar: Sidecar, experiment: str, run_name: str, tags: dict[str, Any],
                 run_id: str | None = None, system_metrics: bool = False) -> None:
        self.sidecar = sidecar
        self.run_id: str | None = sidecar.call("open", experiment, run_name, tags, run_id, system_metrics)
        self._last_wait = time.monotonic()

    # Params, tags, dataset inputs and step metrics go without waiting for the store's answer (the run
    # builds its model meanwhile); an error of theirs is reported by the next call that waits: the
    # artifacts after training (before the result is written), or finishing the run.
    def log_params(self, params: dict[str, Any]) -> None:
        self.sidecar.call("log_params", params, wait=False)

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.sidecar.call("set_tags", tags, wait=False)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.sidecar.call("log_metrics", metrics, step, wait=False)
        if time.monotonic() - self._last_wait > self.PING_EVERY_S:
            self.sidecar.call("ping")  # raises an earlier call's error, e.g. TrackingError
            self._last_wait = time.monotonic()

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.sidecar.call("log_artifact", str(path), artifact_path)

    def log_inputs(self, identity: dict[str, dict[str, str]]) -> None:
        self.sidecar.call("log_inputs", identity, wait=False)

    def log_model(self, name: str, metrics: dict[str, float], dataset: dict[str, str] | None,
                  tags: dict[str, Any]) -> None:
        self.sidecar.call("log_model", name, metrics, dataset, tags)

    def flush(self) -> None:
        self.sidecar.call("flush")

    def finish(self, status: str = "FINISHED") -> None:
        self.sidecar.call("finish", status)


def open_tracker(tracking_uri: str, experiment: str, *, run_name: str, tags: dict[str, Any],
                 run_id: str | None = None, system_metrics: bool = False) -> Any:
    """The run's tracker: through the helper started for ``tracking_uri`` in this process, else in-process."""
    sidecar = current(tracking_uri)
    if sidecar is not None:
        return RemoteTracker(sidecar, experiment, run_name, tags, run_id, system_metrics)
    from nsync_bench.tracking.tracker import MlflowTracker

    return MlflowTracker(tracking_uri, experiment, run_name=run_name, tags=tags, run_id=run_id,
                         system_metrics=system_metrics)


def find_finished_run(tracking_uri: str, experiment: str, run_key: str) -> Any | None:
    """The newest finished run with ``run_key`` (``.info.run_id``, ``.data.metrics``), through the helper
    when this process has one for ``tracking_uri``."""
    sidecar = current(tracking_uri)
    if sidecar is not None:
        return find_finished(sidecar, experiment, run_key)
    from nsync_bench.tracking.tracker import find_finished_run as in_process

    return in_process(tracking_uri, experiment, run_key)
