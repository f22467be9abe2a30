"""Sweeps: expansion, locks, an MLflow server with concurrent workers, kill and resume, Slurm via submitit."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
from conftest import FAST
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from nsync_bench.errors import ConfigError
from nsync_bench.pipeline.locking import LockHeld, RunLock
from nsync_bench.sweep.executors import InProcessExecutor, LocalPoolExecutor, SlurmExecutor, SlurmSettings
from nsync_bench.sweep.matrix import SweepOptions, SweepSpec, expand, load_sweep_file, read_state, run_sweep


def options_for(tmp_path, data_root, uri=None):
    return SweepOptions(runs_dir=str(tmp_path / "runs"), data_root=str(data_root),
                        tracking_uri=uri or f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_the_smoke_sweep_file_expands_to_30_distinct_runs(tmp_path, data_root):
    spec = load_sweep_file("smoke")
    tasks = expand(spec, options_for(tmp_path, data_root))
    assert len(tasks) == 2 * 5 * 3 == len({t.run_key for t in tasks})
    assert {t.method for t in tasks} == {"ldm", "ti", "lora", "nsync", "nsync-lora"}
    paper = load_sweep_file("paper")
    assert paper.profile == "sd15" and paper.protocol == "paper-code" and len(paper.styles) == 4


def test_bad_sweep_files_teach(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('styles = ["toy-ink"]\nmethods = ["ti"]\nseeds = [0]\nsteps = 3\n')
    with pytest.raises(ConfigError, match="steps"):
        load_sweep_file(str(bad))
    with pytest.raises(Exception, match="smoke"):
        load_sweep_file("smok")


def test_a_lock_is_exclusive_and_a_dead_owner_does_not_hold_it(tmp_path):
    path = tmp_path / "key.lock"
    with RunLock(path), pytest.raises(LockHeld):
        RunLock(path).acquire()
    assert not path.exists()
    # A lock left by a dead process on this host is broken at once.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path.write_text(f'{{"host": "{socket.gethostname()}", "pid": {int(dead.stdout)}, "since": 0}}')
    with RunLock(path):
        pass
    # A lock from another host is broken only once its heartbeat is stale.
    path.write_text('{"host": "elsewhere", "pid": 1, "since": 0}')
    with pytest.raises(LockHeld):
        RunLock(path, stale_after_s=60).acquire()
    os.utime(path, (time.time() - 120, time.time() - 120))
    with RunLock(path, stale_after_s=60):
        pass


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                break
        except OSError:
            assert proc.poll() is None, "mlflow server exited"
            assert time.monotonic() < deadline, "mlflow server did not start within 90 s"
            time.sleep(0.5)
    yield uri
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


@pytest.mark.slow
def test_sweep_with_two_workers_logs_every_run_to_an_mlflow_server(tmp_path, data_root, mlflow_server):
    spec = SweepSpec(styles=["toy-pastel"], methods=["ti", "nsync"], seeds=[0, 1], overrides=FAST,
                     experiment="server-sweep")
    options = options_for(tmp_path, data_root, mlflow_server)
    summary = run_sweep(spec, LocalPoolExecutor(2), options)
    assert summary.counts() == {"finished": 4}, [r.error for r in summary.results]

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("server-sweep")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        assert {"metrics/fid", "metrics/kid", "metrics/cmmd", "metrics/csd"} <= set(run.data.metrics)
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"adapter", "eval", "config.json"}

    # Again, with the local run folders gone: MLflow alone says they are finished; nothing trains.
    import shutil

    shutil.rmtree(tmp_path / "runs")
    again = run_sweep(spec, LocalPoolExecutor(2), options)
    assert again.counts() == {"skipped": 4}
    assert len(client.search_runs([experiment.experiment_id])) == 4


@pytest.mark.slow
def test_a_killed_worker_resumes_and_ends_like_an_uninterrupted_run(tmp_path, data_root):
    overrides = ["train.max_steps=60", "train.checkpoint_every=5", "eval.max_prompts=2", "eval.num_inference_steps=3"]
    argv = [sys.executable, "-m", "nsync_bench", "sweep", "--styles", "toy-pastel", "--methods", "ti", "--seeds",
            "0", "--runs-dir", str(tmp_path / "runs"), "--data-root", str(data_root),
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    for item in overrides:
        argv += ["--set", item]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    checkpoints = []
    while not checkpoints:
        checkpoints = list((tmp_path / "runs").rglob("checkpoint-0000010"))
        assert proc.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = checkpoints[0].parent.parent
    assert not (run_dir / "result.json").exists()

    spec = SweepSpec(styles=["toy-pastel"], methods=["ti"], seeds=[0], overrides=overrides)
    resumed = run_sweep(spec, InProcessExecutor(), options_for(tmp_path, data_root))
    assert resumed.counts() == {"finished": 1}, resumed.results[0].error
    assert "resumed from" in (run_dir / "run.log").read_text()

    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    fresh = run_sweep(spec, InProcessExecutor(), options_for(fresh_dir, data_root))
    assert fresh.counts() == {"finished": 1}
    a = load_file(run_dir / "adapter" / "learned_embeds.safetensors")
    b = load_file(next((fresh_dir / "runs").rglob("learned_embeds.safetensors")))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_slurm_executor_through_submitits_local_executor(tmp_path, data_root):
    spec = SweepSpec(styles=["toy-ink"], methods=["ti", "lora"], seeds=[0], overrides=FAST)
    settings = SlurmSettings(cluster="local", folder=str(tmp_path / "slurm-logs"), timeout_min=10, gpus_per_node=0,
                             cpus_per_task=1)
    summary = run_sweep(spec, SlurmExecutor(settings), options_for(tmp_path, data_root))
    assert summary.counts() == {"finished": 2}, [r.error for r in summary.results]
    assert list((tmp_path / "slurm-logs").rglob("*_log.out"))  # per-job logs


@pytest.mark.slow
def test_a_failed_run_is_reported_and_retry_failed_reruns_only_it(tmp_path, data_root, monkeypatch):
    import nsync_bench.pipeline.runner as runner

    original = runner._train_and_evaluate

    def flaky(config, *args, **kwargs):
        if config.run.method == "lora":
            raise RuntimeError("simulated failure")
        return original(config, *args, **kwargs)

    monkeypatch.setattr(runner, "_train_and_evaluate", flaky)
    spec = SweepSpec(styles=["toy-ink"], methods=["ti", "lora"], seeds=[0], overrides=FAST)
    options = options_for(tmp_path, data_root)
    first = run_sweep(spec, InProcessExecutor(), options)
    assert first.counts() == {"finished": 1, "failed": 1}
    failed = next(r for r in first.results if r.status == "failed")
    assert "simulated failure" in failed.error and failed.log_path.endswith("run.log")
    with open(failed.log_path) as handle:
        assert "simulated failure" in handle.read()
    assert read_state(first.state_file)[failed.run_key]["status"] == "failed"

    monkeypatch.setattr(runner, "_train_and_evaluate", original)
    events = []
    retry = run_sweep(spec, InProcessExecutor(), options, retry_failed=True,
                      on_event=lambda task, status, result: events.append((task.method, status)))
    assert retry.counts() == {"finished": 1}
    assert {m for m, _ in events} == {"lora"}


def report_visible_devices(_):
    """Runs in a pool worker (module level, so spawned workers can import it)."""
    time.sleep(0.3)  # keep both workers busy so that each one's initializer runs
    return os.environ.get("CUDA_VISIBLE_DEVICES")


@pytest.mark.slow
def test_local_workers_are_pinned_one_gpu_each():
    from nsync_bench.sweep.executors import make_pool

    with make_pool(2, ["3", "5"]) as pool:
        seen = set(pool.map(report_visible_devices, range(4)))
    assert seen == {"3", "5"}
    with pytest.raises(ValueError, match="one GPU per worker"):
        make_pool(3, ["0", "1"])
