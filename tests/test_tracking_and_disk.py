"""Issue 20, item 7: a dead tracking server, a full disk, a report killed midway.

Before: a tracking server that died mid-run kept the run in MLflow's client retries for ~8 minutes, then
printed a traceback; a full disk under the runs folder gave a traceback from the checkpoint writer; a
report killed midway left a half-written folder that blocked the same ``--out``. Now: one line and a
resumable checkpoint within a minute; one line naming the folder and the space needed, nothing lost; the
report appears whole or not at all.
"""

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import FAST
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.pipeline.runner import run
from nsync_bench.tracking.tracker import MlflowTracker

REFUSED = ("API request to http://127.0.0.1:9/api/2.0/mlflow/runs/log-batch failed with exception "
           "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
           "/api/2.0/mlflow/runs/log-batch "
           "(Caused by NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=9): Failed to establish a new "
           "connection: [Errno 111] Connection refused\"))")


def _env():
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


# -- the tracking server ---------------------------------------------------------------------------
def test_the_mlflow_client_gives_up_within_a_minute_unless_told_otherwise(monkeypatch):
    from nsync_bench.tracking.tracker import FAIL_FAST_ENV, client_for

    for name in FAIL_FAST_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")  # a user's own choice wins
    client_for("sqlite:///:memory:")
    tries = int(os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) + 1
    backoff = sum(int(os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"]) * 2**k for k in range(tries - 1))
    assert tries * int(FAIL_FAST_ENV["MLFLOW_HTTP_REQUEST_TIMEOUT"]) + backoff + tries < 60  # worst case, jitter incl.
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"


def test_an_in_memory_store_writes_no_lock_file(tmp_path, monkeypatch):
    """The init lock sits beside a store's file; an in-memory store has none, so nothing may appear in the
    working directory (a lock named ``:memory:.init-lock`` once did, in the project's root)."""
    from nsync_bench.paths import sqlite_file
    from nsync_bench.tracking.tracker import client_for

    monkeypatch.chdir(tmp_path)
    client_for("sqlite:///:memory:")
    assert list(tmp_path.iterdir()) == []
    assert sqlite_file("sqlite:///:memory:") is None and sqlite_file("sqlite:///") is None
    assert sqlite_file("sqlite:///runs/m.db") == Path("runs/m.db") and sqlite_file("http://h:5000") is None


def test_a_store_that_stops_answering_is_one_error_then_silence(tmp_path):
    from nsync_bench.tracking.tracker import TrackingError

    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'm.db'}", "dead", "r", tags={})
    calls = []

    class Dead:
        def __getattr__(self, name):
            def refuse(*args, **kwargs):
                calls.append(name)
                raise MlflowException(REFUSED)

            return refuse

    tracker.client = Dead()
    tracker.log_metrics({"train/loss": 1.0}, step=1)
    with pytest.raises(TrackingError) as info:
        tracker.flush()
    message = str(info.value)
    assert "stopped answering while logging metrics (Connection refused)" in message and "\n" not in message
    assert "run the same command again" in message and "HTTPConnectionPool" not in message
    tracker.log_artifact(tmp_path)  # the run's cleanup: no second wait for the same dead server
    tracker.finish("FAILED")
    assert calls == ["log_batch"]


def test_a_refused_request_is_not_mistaken_for_a_dead_store():
    from sqlalchemy.exc import IntegrityError

    from nsync_bench.tracking.tracker import tracking_failure

    assert tracking_failure(MlflowException(REFUSED)) and tracking_failure(ConnectionRefusedError())
    assert tracking_failure(MlflowException("(sqlite3.OperationalError) database is locked"))
    assert not tracking_failure(MlflowException("Invalid value 'x' for parameter 'max_results'"))
    assert not tracking_failure(IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: datasets.name")))


def test_two_workers_logging_the_same_new_dataset_do_not_fail_the_loser():
    """MLflow's SQLite store checks, then inserts: a sweep's parallel workers can race on a new dataset."""
    from nsync_bench.tracking.mlflow_ui import log_dataset_inputs

    calls = []

    class Racing:
        def log_inputs(self, run_id, datasets):
            calls.append(len(datasets))
            if len(calls) == 1:
                raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, "
                                      "datasets.name, datasets.digest")

    log_dataset_inputs(Racing(), "r", {"training": {"name": "toy-ink/train", "source": "/d", "digest": "abc"}})
    assert calls == [1, 1]


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_a_tracking_failure_mid_training_leaves_a_checkpoint_at_that_step(run_options, monkeypatch):
    import nsync_bench.tracking.tracker as tracker_module

    monkeypatch.setattr(tracker_module, "_FLUSH_EVERY", 1)  # every step's metrics go out at once
    real = MlflowClient.log_batch

    def dies_at_step_4(self, run_id, metrics=(), *args, **kwargs):
        if any(m.step == 4 for m in metrics):
            raise MlflowException(REFUSED)
        return real(self, run_id, metrics, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", dies_at_step_4)
    with pytest.raises(Exception, match="stopped answering") as info:
        run(style="toy-ink", method="ti", seed=0, overrides=FAST, options=run_options)
    assert getattr(info.value, "exit_code", None) == 1
    assert [p.name for p in run_options.runs_dir.rglob("checkpoint-*")] == ["checkpoint-0000004"]
    monkeypatch.setattr(MlflowClient, "log_batch", real)
    result = run(style="toy-ink", method="ti", seed=0, overrides=FAST, options=run_options)
    assert "resumed from" in (result.run_dir / "run.log").read_text() and "(step 4)" in (
        result.run_dir / "run.log").read_text()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # a real MLflow server and a real run in subprocesses
def test_a_tracking_server_that_dies_mid_run_fails_it_within_a_minute(tmp_path, data_root):
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                               f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", str(tmp_path / "art"),
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              env={**_env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        argv = ["nsync-bench", "run", "--style", "toy-ink", "--method", "ti", "--set", "train.max_steps=5000",
                "--set", "train.checkpoint_every=20", "--runs-dir", str(tmp_path / "runs"), "--data-root",
                str(data_root), "--tracking-uri", f"http://127.0.0.1:{port}", "--experiment", "dead"]
        proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 300
        while not list((tmp_path / "runs").rglob("checkpoint-*")):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the run never checkpointed"
            time.sleep(0.2)
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the server dies mid-run
        server.wait(timeout=60)
    died = time.monotonic()
    try:
        output = proc.communicate(timeout=120)[0]  # before: ~500 s in retries
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - died < 60, "the run did not fail within a minute of the server's death"
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1, output
    assert len(errors) == 1 and "stopped answering" in errors[0] and "Traceback" not in output, output
    assert list((tmp_path / "runs").rglob("checkpoint-*/state.pt")), "no checkpoint to resume from"
    assert "tracking failed at step" in next((tmp_path / "runs").rglob("run.log")).read_text()  # saved then


# -- a full disk -----------------------------------------------------------------------------------
def _little_space(monkeypatch, below, free=4096):
    real = shutil.disk_usage

    def usage(path):
        found = real(path)
        return found._replace(free=free) if str(Path(path).resolve()).startswith(str(below)) else found

    monkeypatch.setattr(shutil, "disk_usage", usage)


def test_a_full_disk_at_a_checkpoint_names_the_folder_and_the_space_and_keeps_the_last_one(tmp_path, monkeypatch):
    import torch

    from nsync_bench.errors import DiskFullError
    from nsync_bench.training.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint

    state = {"w": torch.randn(64, 64)}
    save_checkpoint(tmp_path, 1, state, {}, keep=1)
    _little_space(monkeypatch, tmp_path)
    with pytest.raises(DiskFullError) as info:
        save_checkpoint(tmp_path, 2, state, {}, keep=1)
    message = str(info.value)
    assert f"no space left in {tmp_path} (4.0 KiB free)" in message and "checkpoint-0000002/state.pt needs" in message
    assert "KiB" in message and "\n" not in message
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-0000001"]  # nothing lost
    assert torch.equal(load_checkpoint(list_checkpoints(tmp_path)[0])["w"], state["w"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-0000001"]  # no temp folder


def test_enospc_in_the_middle_of_a_write_is_the_same_one_line_error(tmp_path, monkeypatch):
    import nsync_bench.io as io_module
    from nsync_bench.errors import DiskFullError

    target = tmp_path / "result.json"
    target.write_text("old")
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io_module.os, "fdopen", lambda fd, mode, **kw: Full(real_fdopen(fd, mode, **kw)))
    with pytest.raises(DiskFullError, match=rf"no space left in {tmp_path} .*writing result.json needs 1000 bytes"):
        io_module.atomic_write_text(target, "x" * 1000)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_a_run_on_a_full_disk_is_one_line_and_resumes_once_there_is_room(tmp_path, data_root, monkeypatch):
    argv = ["run", "--style", "toy-ink", "--method", "ti", *[a for s in FAST for a in ("--set", s)], "--runs-dir",
            str(tmp_path / "runs"), "--data-root", str(data_root), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]
    (tmp_path / "runs").mkdir()
    _little_space(monkeypatch, (tmp_path / "runs").resolve())
    full = CliRunner().invoke(app, argv)
    message = " ".join(full.output.split())
    assert full.exit_code == 1, full.output
    assert "no space left in" in message and "checkpoints" in message and "needs" in message, message
    assert "Traceback" not in full.output and "unexpected" not in message
    monkeypatch.undo()
    assert CliRunner().invoke(app, argv).exit_code == 0


# -- a report killed midway ------------------------------------------------------------------------
@pytest.mark.slow  # the report in a subprocess
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_report_killed_midway_leaves_no_report_folder_and_the_same_out_works(tmp_path, sig):
    from helpers import ReportStore

    store = ReportStore(tmp_path)
    for seed in (0, 1, 2):
        store.add("ti", seed, 50.0 + seed)
        store.add("nsync", seed, 40.0 + seed)
    out = tmp_path / "reports" / "mine"
    argv = ["nsync-bench", "report", "--experiment", "cells", "--tracking-uri", store.uri, "--out", str(out),
            "--data-root", str(tmp_path / "data")]
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while not (out.parent.is_dir() and any(p.name.startswith(".tmp-mine-") for p in out.parent.iterdir())):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the report never started writing"
        time.sleep(0.05)
    proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0]
    assert not out.exists(), f"a half-written report folder was left: {sorted(out.rglob('*'))}"
    if sig == signal.SIGTERM:
        assert proc.returncode == 130, output
        assert [p.name for p in out.parent.iterdir()] == []  # cleaned up
    again = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (out / "report.md").is_file() and (out / "index.html").is_file()
