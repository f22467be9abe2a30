"""Slurm at scale: no SQLite store across nodes, style preparation as parallel jobs, requeued jobs not busy."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.errors import ConfigError
from nsync_bench.pipeline.locking import LockHeld, RunLock, slurm_identity
from nsync_bench.sweep import executors
from nsync_bench.sweep.executors import SlurmExecutor, SlurmSettings, SweepJob, check_store_for_executor
from nsync_bench.sweep.matrix import SweepOptions, Task, TaskResult


# ----------------------------------------------------------------------------------- the store
def test_slurm_with_sqlite_is_refused_pointing_at_the_server_docs():
    with pytest.raises(ConfigError, match=r"SQLite.*PostgreSQL.*--tracking-uri http://.*docs/scale\.md"):
        check_store_for_executor("slurm", "sqlite:////cluster/mlflow.db")
    check_store_for_executor("slurm", "http://10.0.0.5:5000")  # a server: fine
    check_store_for_executor("local", "sqlite:////tmp/mlflow.db")  # one machine: fine


def test_one_machine_or_an_explicit_allowance_only_warns(caplog):
    with caplog.at_level(logging.WARNING):
        check_store_for_executor("slurm", "sqlite:///mlflow.db", cluster="local")
        check_store_for_executor("slurm", "sqlite:///mlflow.db", allow_sqlite=True)
    assert sum("PostgreSQL" in r.getMessage() for r in caplog.records) == 2


def test_the_cli_refuses_before_anything_runs(tmp_path):
    result = CliRunner().invoke(app, ["sweep", "--styles", "toy-pastel", "--methods", "ti", "--seeds", "0",
                                      "--executor", "slurm", "--tracking-uri", f"sqlite:///{tmp_path}/m.db",
                                      "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "PostgreSQL" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "m.db").exists()


# ----------------------------------------------------------------------------------- preparation
class _Handle:
    def __init__(self, log: list, style: str, fails: bool) -> None:
        self.log, self.style, self.fails, self.job_id = log, style, fails, f"job-{style}"
        self.paths = type("Paths", (), {"stdout": f"{style}.out", "stderr": f"{style}.err"})()

    def result(self) -> str:
        self.log.append(("wait", self.style))
        if self.fails:
            raise RuntimeError("node failure")
        return self.style


class _FakeSubmitit:
    def __init__(self, log: list, failing: set[str]) -> None:
        self.log, self.failing = log, failing

    def submit(self, job):
        self.log.append(("submit", job.style))
        return _Handle(self.log, job.style, job.style in self.failing)


class _Prepare:
    def __init__(self, style: str) -> None:
        self.style = style


def test_slurm_submits_every_style_before_waiting_for_any(monkeypatch):
    log: list = []
    monkeypatch.setattr(SlurmExecutor, "make_executor", lambda self: _FakeSubmitit(log, {"vangogh"}))
    failed = SlurmExecutor(SlurmSettings()).prepare([_Prepare(s) for s in ("monet", "vangogh", "ghibli")])
    kinds = [kind for kind, _ in log]
    assert kinds == ["submit"] * 3 + ["wait"] * 3  # all in flight at once, not one after another
    assert set(failed) == {"vangogh"} and "node failure" in failed["vangogh"] and "vangogh.err" in failed["vangogh"]


# ----------------------------------------------------------------------------------- requeued jobs
def _held_by(path, **owner):
    path.write_text(json.dumps({"host": "node-a", "pid": 4242, "since": time.time(), **owner}))


def _slurm_env(monkeypatch, restart: int) -> None:
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_RESTART_COUNT", str(restart))


def test_slurm_identity_reads_array_task_and_restart_count():
    assert slurm_identity({"SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "80",
                           "SLURM_RESTART_COUNT": "2"}) == ("77_3", 2)
    assert slurm_identity({"SLURM_JOB_ID": "80"}) == ("80", 0)
    assert slurm_identity({}) == (None, 0)


def test_a_requeued_job_takes_over_its_predecessors_fresh_lock_on_another_host(tmp_path, monkeypatch):
    path = tmp_path / ".run.lock"
    _held_by(path, slurm_job="77_3", slurm_restart=0)  # heartbeat seconds ago, from another host
    _slurm_env(monkeypatch, restart=1)
    lock = RunLock(path)
    lock.acquire()  # no wait: the predecessor is dead by construction
    owner = json.loads(path.read_text())
    assert owner["host"] == socket.gethostname() and owner["pid"] == os.getpid()
    assert (owner["slurm_job"], owner["slurm_restart"]) == ("77_3", 1)
    lock.release()


def test_a_live_holder_elsewhere_is_still_busy(tmp_path, monkeypatch):
    path = tmp_path / ".run.lock"
    _slurm_env(monkeypatch, restart=0)
    _held_by(path, slurm_job="77_3", slurm_restart=0)  # the same incarnation on another node: not ours to break
    with pytest.raises(LockHeld):
        RunLock(path).acquire()
    _held_by(path, slurm_job="90_1", slurm_restart=0)  # another job
    with pytest.raises(LockHeld):
        RunLock(path).acquire()


def test_waiting_outlives_a_dead_holder_on_another_host(tmp_path):
    path = tmp_path / ".run.lock"
    _held_by(path)
    lock = RunLock(path, heartbeat_s=0.05, stale_after_s=0.3)  # nobody beats: stale after 0.3 s of silence
    with pytest.raises(LockHeld):
        lock.acquire(wait_s=0.0)
    lock.acquire(wait_s=5.0)
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()


def test_a_sweeps_slurm_job_waits_one_stale_window_for_its_lock(monkeypatch):
    seen = {}

    def fake_run_task(task, options, experiment):
        seen["wait"] = options.lock_wait_s
        return TaskResult(task.run_key, task.label, "finished")

    monkeypatch.setattr(executors, "run_task", fake_run_task)
    task = Task("toy-pastel", "ti", 0, "k", "/tmp/nowhere/run", {})
    assert SweepJob(SweepOptions(), "exp")(task).status == "finished"
    assert seen["wait"] >= RunLock("x").stale_after_s


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")
def test_a_zombie_holds_no_lock():
    # A SIGKILLed sweep's worker is a zombie until init reaps it: it answers signal 0 but holds nothing.
    import subprocess

    from nsync_bench.pipeline.locking import _pid_alive

    assert _pid_alive(os.getpid())
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.01)
    try:
        assert not _pid_alive(child.pid)  # exited, not yet reaped (we have not waited)
    finally:
        child.wait()
    assert not _pid_alive(child.pid)
