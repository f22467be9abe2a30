"""The MLflow helper process: a run's MLflow calls, answered in a process of their own.

``nsync-bench run`` starts it first thing (:func:`nsync_bench.tracking.remote.start`): it imports MLflow
on another core while the run imports torch and diffusers, then performs the run's MLflow calls, one
JSON line per call on stdin, one answer per line on stdout (the protocol of
:class:`nsync_bench.tracking.remote.Sidecar`). It ignores Ctrl-C (the run ends its MLflow run as KILLED
through it) and exits when its stdin closes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from nsync_bench.errors import NsyncBenchError
from nsync_bench.paths import sqlite_file


class _Helper:
    """The run's MLflow state in the helper: its tracker, once opened."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.tracker: Any = None

    def handle(self, op: str, args: list[Any]) -> Any:
        from nsync_bench.tracking.tracker import MlflowTracker, find_finished_run

        if op == "find_finished_run":
            found = find_finished_run(self.tracking_uri, *args)
            return None if found is None else {"run_id": found.info.run_id, "metrics": dict(found.data.metrics)}
        if op == "ping":  # nothing to do: the answer carries any deferred error
            return None
        if op == "open":
            experiment, run_name, tags, run_id, system_metrics = args
            self.tracker = MlflowTracker(self.tracking_uri, experiment, run_name, tags, run_id, system_metrics)
            return self.tracker.run_id
        if self.tracker is None:
            raise RuntimeError(f"{op} before the run was opened")
        if op == "log_artifact":
            args = [Path(args[0]), args[1]]
        return getattr(self.tracker, op)(*args)


def _serve(tracking_uri: str, requests: IO[str], replies: IO[str]) -> None:
    """Answer one JSON line per request until end of input (the helper's main loop)."""
    deferred: dict[str, Any] | None = None  # an error reply nobody has heard of yet, sent with the next answer
    try:
        _warm_up(tracking_uri)
    except Exception as err:  # a bad store: the run learns it (with MLflow's message) from its first call
        deferred = {"error": f"{type(err).__name__}: {err}"}
    helper = _Helper(tracking_uri)
    for line in requests:
        request = json.loads(line)
        reply: dict[str, Any]
        try:
            reply = {"result": helper.handle(request["op"], request["args"])}
        except NsyncBenchError as err:
            reply = {"error": str(err), "teaching": True, "tracking": type(err).__name__ == "TrackingError"}
        except Exception as err:  # every failure goes back to the run, which decides
            reply = {"error": f"{type(err).__name__}: {err}"}
        if not request["wait"]:
            deferred = deferred or (reply if "error" in reply else None)
            continue
        if deferred is not None and "error" not in reply:
            reply, deferred = deferred, None
        replies.write(json.dumps(reply, default=str) + "\n")
        replies.flush()


def _warm_up(tracking_uri: str) -> None:
    """Import MLflow's client and its SQL store now, while the run imports torch; create no store (a run
    refused later, for a bad style say, must not leave a new one behind). ``MlflowClient(...)`` creates a
    SQLite store that does not exist yet, so for a new store only the imports are done here."""
    import mlflow.tracking  # the client: imported for its cost

    if tracking_uri.startswith("sqlite:"):
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401 - imported for its cost: SQLAlchemy, Alembic
    db = sqlite_file(tracking_uri)
    if db is None or db.exists():
        from nsync_bench.tracking.tracker import _client

        _client(tracking_uri)


def main() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle; it then ends the MLflow run
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything MLflow prints goes to stderr, not into answers
    code = 1
    try:
        _serve(sys.argv[1], sys.stdin, replies)
        code = 0
    finally:
        replies.close()
        sys.stderr.flush()
        os._exit(code)  # everything is written; skip tearing down MLflow's imports


if __name__ == "__main__":
    main()
