"""Issue 20, item 4 (and item 8's negative render): signals stop a sweep cleanly, with real processes.

Before: SIGTERM to ``sweep --max-parallel 2`` orphaned both workers, which finished their runs and then
blocked forever; with ``--max-parallel 1`` the sweep died without a checkpoint, leaving a stale lock and a
RUNNING MLflow run. Now every running run saves a checkpoint, turns KILLED in MLflow and releases its lock,
no worker outlives the sweep (not even a SIGKILLed one), and the same command resumes with one MLflow run
per key. Every wait here polls for a state with a deadline; nothing sleeps and then asserts.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow  # real sweeps in subprocesses: kept out of the fast tier

STEPS = 150
METHODS = ["ti", "lora"]


def _env():
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def _argv(tmp_path, data_root, parallel, methods=METHODS):
    return ["nsync-bench", "sweep", "--styles", "toy-ink", "--methods", ",".join(methods), "--seeds", "0",
            "--max-parallel", str(parallel), "--set", f"train.max_steps={STEPS}", "--set", "train.checkpoint_every=2",
            "--set", "eval.max_prompts=2", "--set", "eval.num_inference_steps=3", "--runs-dir", str(tmp_path / "runs"),
            "--data-root", str(data_root), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--experiment", "signals"]


def _wait_for(condition, proc, deadline_s, what):
    deadline = time.monotonic() + deadline_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}: {proc.communicate()[0]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _checkpointed(tmp_path):
    return {p.parts[-4] for p in (tmp_path / "runs").rglob("checkpoints/checkpoint-*")}  # method folders


def _alive(pids):
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _runs(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("signals")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def _start_and_stop(tmp_path, data_root, parallel, sig, *, to_group=False, expect_running=2):
    """Start a sweep, wait until ``expect_running`` runs have a checkpoint, signal it; returns (proc, output,
    the pids of its worker processes)."""
    proc = subprocess.Popen(_argv(tmp_path, data_root, parallel), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    _wait_for(lambda: len(_checkpointed(tmp_path)) >= expect_running, proc, 300, "the runs' first checkpoints")
    workers = [child.pid for child in psutil.Process(proc.pid).children(recursive=True)]
    if to_group:
        os.killpg(proc.pid, sig)  # Ctrl-C in a terminal reaches the whole process group
    else:
        proc.send_signal(sig)
    output = proc.communicate(timeout=300)[0]
    return proc, output, workers


def _assert_stopped_cleanly(tmp_path, proc, output, workers, stopped):
    assert proc.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output, output
    _wait_for(lambda: not _alive(workers), None, 30, f"the workers {workers} to exit")  # zombies do not count
    assert not list((tmp_path / "runs").rglob("*.lock")), "a lock survived the sweep"
    runs = _runs(tmp_path)
    assert sorted(r.data.tags["method"] for r in runs) == sorted(stopped)
    assert {r.info.status for r in runs} == {"KILLED"}
    assert _checkpointed(tmp_path) == set(stopped)


def _assert_resumes_with_one_run_per_key(tmp_path, data_root):
    again = subprocess.run(_argv(tmp_path, data_root, 2), env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    runs = _runs(tmp_path)
    assert sorted(r.data.tags["method"] for r in runs) == sorted(METHODS)  # one MLflow run per key
    assert {r.info.status for r in runs} == {"FINISHED"}
    logs = [p.read_text() for p in (tmp_path / "runs").rglob("run.log")]
    assert sum("resumed from" in text for text in logs) >= 1


def test_sigterm_stops_a_parallel_sweep_without_orphans_and_a_rerun_resumes(tmp_path, data_root):
    proc, output, workers = _start_and_stop(tmp_path, data_root, 2, signal.SIGTERM)
    assert workers, "the pool had no worker processes"
    _assert_stopped_cleanly(tmp_path, proc, output, workers, METHODS)
    _assert_resumes_with_one_run_per_key(tmp_path, data_root)


def test_sigterm_stops_an_in_process_sweep_with_a_checkpoint_and_no_stale_lock(tmp_path, data_root):
    proc, output, workers = _start_and_stop(tmp_path, data_root, 1, signal.SIGTERM, expect_running=1)
    _assert_stopped_cleanly(tmp_path, proc, output, workers, ["ti"])  # lora never started
    _assert_resumes_with_one_run_per_key(tmp_path, data_root)


def test_ctrl_c_to_the_process_group_stops_every_worker_once(tmp_path, data_root):
    proc, output, workers = _start_and_stop(tmp_path, data_root, 2, signal.SIGINT, to_group=True)
    _assert_stopped_cleanly(tmp_path, proc, output, workers, METHODS)


def test_a_signal_that_reaches_one_worker_only_stops_the_sweep(tmp_path, data_root):
    """SIGINT to one worker and not to the sweep (the race Ctrl-C to a group can lose: the workers' runs saw it,
    the sweep's process did not yet): the killed run stops the sweep as Ctrl-C does, exit 130, not 0."""
    proc = subprocess.Popen(_argv(tmp_path, data_root, 2), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    _wait_for(lambda: len(_checkpointed(tmp_path)) >= 2, proc, 300, "the runs' first checkpoints")
    workers = [child.pid for child in psutil.Process(proc.pid).children(recursive=True)]
    busy = [pid for pid in workers if psutil.Process(pid).cpu_percent(interval=0.2) > 0]
    os.kill(busy[0], signal.SIGINT)
    output = proc.communicate(timeout=300)[0]
    _assert_stopped_cleanly(tmp_path, proc, output, workers, METHODS)


def test_workers_of_a_killed_sweep_stop_their_runs_and_exit(tmp_path, data_root):
    """SIGKILL leaves the sweep no chance to clean up: the workers notice (Linux) and stop their runs."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux-only")
    proc = subprocess.Popen(_argv(tmp_path, data_root, 2), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    _wait_for(lambda: len(_checkpointed(tmp_path)) >= 2, proc, 300, "the runs' first checkpoints")
    workers = [child.pid for child in psutil.Process(proc.pid).children(recursive=True)]
    proc.kill()
    proc.communicate(timeout=60)
    _wait_for(lambda: not _alive(workers), None, 120, f"the orphaned workers {workers} to exit")
    assert not list((tmp_path / "runs").rglob("*.lock"))
    assert {r.info.status for r in _runs(tmp_path)} == {"KILLED"}


def test_sigterm_during_data_negatives_leaves_no_temporary_folder(tmp_path, data_root):
    import shutil

    from nsync_bench.data.styles import ensure_style_data

    root = tmp_path / "data"
    shutil.copytree(ensure_style_data("toy-ink", data_root), root / "toy-ink")
    argv = ["nsync-bench", "data", "negatives", "toy-ink", "--data-root", str(root),
            "--set", "negatives.num_inference_steps=400"]
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def rendering():
        folder = root / "negatives"
        return folder.exists() and any(p.name.startswith(".tmp") for p in folder.rglob("*"))

    _wait_for(rendering, proc, 240, "the render's temporary folder")
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, output
    assert not [p for p in (root / "negatives").rglob("*") if p.name.startswith(".tmp")], "a temp set was left"
    assert not list((root / "negatives").rglob("negatives.json")), "a half-rendered set was cached"
