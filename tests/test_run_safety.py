"""Results under misuse: one process per run key, divergence fails the run, checks before training, seeds."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from conftest import FAST
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.config.recipes import resolve_config
from nsync_bench.data.styles import ensure_style_data
from nsync_bench.errors import ConfigError, DataError
from nsync_bench.pipeline.runner import RESULT_FILE, finished_result, run, run_directory
from nsync_bench.training.divergence import DivergenceError, DivergenceGuard

DIVERGE = ["train.max_steps=10", "train.checkpoint_every=3", "train.learning_rate=1e9", "eval.max_prompts=2",
           "eval.num_inference_steps=3"]


def _runs(options):
    mlflow.set_tracking_uri(options.tracking_uri)
    try:
        return mlflow.search_runs(experiment_names=[options.experiment])
    except Exception:  # no store yet: no runs
        return []


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_a_diverged_run_is_failed_never_finished_and_a_rerun_recomputes_it(run_options):
    with pytest.raises(DivergenceError, match=r"diverged.*step \d+.*learning rate"):
        run(style="toy-pastel", method="ti", seed=0, overrides=DIVERGE, options=run_options)
    runs = _runs(run_options)
    assert list(runs["status"]) == ["FAILED"]
    assert "metrics.metrics/fid" not in runs  # nothing was evaluated or logged as a result
    config = resolve_config(style="toy-pastel", method="ti", seed=0, profile="smoke", overrides=DIVERGE)
    assert not (run_directory(config, run_options) / RESULT_FILE).exists()
    assert finished_result(config, run_options) is None
    with pytest.raises(DivergenceError):  # recomputed (from its last finite checkpoint), not "already finished"
        run(style="toy-pastel", method="ti", seed=0, overrides=DIVERGE, options=run_options)


def test_the_cli_exits_non_zero_on_divergence(tmp_path, data_root):
    sets = [arg for setting in DIVERGE for arg in ("--set", setting)]
    result = CliRunner().invoke(app, ["run", "--style", "toy-ink", "--method", "ti", *sets, "--runs-dir",
                                      str(tmp_path / "runs"), "--data-root", str(data_root),
                                      "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert result.exit_code == 1, result.output
    assert "diverged" in result.output and "finished" not in result.output.split("diverged")[0]


def test_fp16_tolerates_a_few_skipped_steps_fp32_none():
    import torch

    finite, nan = [torch.zeros(2)], {"train/loss": float("nan")}
    guard = DivergenceGuard("fp16", 1e-3)
    for step in range(16):
        guard.check(step, nan, finite)  # the scaler skips these steps
    guard.check(16, {"train/loss": 0.1}, finite)  # a finite step resets the count
    for step in range(16):
        guard.check(17 + step, nan, finite)
    with pytest.raises(DivergenceError, match="17 consecutive steps"):
        guard.check(40, nan, finite)
    with pytest.raises(DivergenceError, match="step 1"):
        DivergenceGuard("no", 1e-3).check(1, nan, finite)
    with pytest.raises(DivergenceError, match="trained parameters are not finite"):
        DivergenceGuard("fp16", 1e-3).check(1, {"train/loss": 0.1}, [torch.tensor([1.0, float("inf")])])


@pytest.fixture
def own_style(tmp_path, data_root):
    """A private copy of toy-pastel to damage."""
    root = tmp_path / "data"
    shutil.copytree(ensure_style_data("toy-pastel", data_root), root / "toy-pastel")
    return root / "toy-pastel"


def _fails_before_training(options, overrides, error, match):
    started = time.perf_counter()
    with pytest.raises(error, match=match):
        run(style="toy-pastel", method="ti", seed=0, overrides=overrides, options=options)
    assert time.perf_counter() - started < 30
    assert not list(Path(options.runs_dir).rglob("config.json"))  # no run folder, no MLflow run
    assert len(_runs(options)) == 0


@pytest.mark.parametrize("mode", ["caption", "templates"])
def test_uncaptioned_test_images_fail_before_training_whatever_the_prompt_mode(run_options, own_style, mode):
    for caption in (own_style / "test").glob("*.txt"):
        caption.unlink()
    run_options.data_root = own_style.parent
    _fails_before_training(run_options, [*FAST, f"prompts.mode={mode}"], DataError,
                           r"8 test image\(s\).*no caption.*whatever prompts.mode is.*data captions")


def test_one_evaluation_prompt_fails_before_training(run_options):
    _fails_before_training(run_options, [*FAST, "eval.max_prompts=1"], ConfigError,
                           r"eval.max_prompts = 1 .*FID/KID need at least 2.*eval.max_prompts=2")


def test_a_batch_larger_than_the_training_set_fails_before_training(run_options):
    """``train.batch_size=100000`` on the smoke profile's 24 images was killed for memory mid-run."""
    _fails_before_training(run_options, [*FAST, "train.batch_size=100000"], ConfigError,
                           r"train.batch_size = 100000 is larger than the 24 training images.*train.batch_size=24")


def test_a_one_image_test_split_fails_before_training(run_options, own_style):
    for image in sorted((own_style / "test").glob("*.png"))[1:]:
        image.unlink()
    run_options.data_root = own_style.parent
    _fails_before_training(run_options, FAST, DataError, r"test split .* has 1 image\(s\).*at least 2")


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_metrics_from_few_images_carry_a_warning_in_the_run(run_options):
    result = run(style="toy-ink", method="ti", seed=3, overrides=FAST, options=run_options)
    tags = MlflowClient(run_options.tracking_uri).get_run(result.mlflow_run_id).data.tags
    assert "fewer than 50" in tags["metric.fid.warning"] and "fewer than 50" in tags["metric.kid.warning"]
    assert "metric.csd.warning" not in tags


@pytest.mark.parametrize("seed", ["99999999999999999999999", "9223372036854775808", "-1"])
def test_out_of_range_seeds_are_refused_at_the_cli(seed, tmp_path):
    result = CliRunner().invoke(app, ["run", "--style", "toy-ink", "--method", "ti", "--seed", seed,
                                      "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "run.seed" in result.output and seed in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_a_second_process_with_the_same_run_key_refuses_naming_the_holder(tmp_path, data_root):
    """The issue's reproducer: the same `run` started twice; one MLflow run, one set of step metrics."""
    argv = ["nsync-bench", "run", "--style", "toy-pastel", "--method", "ti", "--seed", "7",
            "--set", "train.max_steps=40", "--set", "eval.max_prompts=2", "--set", "eval.num_inference_steps=3",
            "--runs-dir", str(tmp_path / "runs"), "--data-root", str(data_root),
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--experiment", "lock"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "runs").rglob(".seed7-*.lock")):
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "the first run never took its lock"
        time.sleep(0.2)
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    out_first = first.communicate(timeout=600)[0]
    assert first.returncode == 0, out_first
    assert second.returncode == 2, second.stdout + second.stderr
    message = " ".join((second.stdout + second.stderr).split())
    assert "already running" in message and f"process {first.pid}" in message, message
    assert "Traceback" not in message
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("lock").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert len(client.get_metric_history(runs[0].info.run_id, "train/loss")) == 40


_OPEN_STORE = """
import sys, time
from pathlib import Path
from nsync_bench.tracking.tracker import ensure_experiment
Path(sys.argv[3]).touch()  # imported: ready
go = Path(sys.argv[2])
while not go.exists():  # then every process opens the new store at the same moment
    time.sleep(0.001)
print(ensure_experiment(sys.argv[1], "together"))
"""


@pytest.mark.slow  # four Python processes importing MLflow
def test_processes_opening_a_new_sqlite_store_together_all_succeed(tmp_path):
    """Opening a new SQLite store creates and migrates it; four processes doing so at once used to clash in
    Alembic ("table _alembic_tmp_experiments already exists": 9 of 12 processes failed in three trials). The
    first to hold the store's init lock creates it, the others wait and find it current."""
    uri, go = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_STORE, uri, str(go), str(flag)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for flag in ready]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready):
        assert all(p.poll() is None for p in procs), [p.communicate()[0] for p in procs if p.poll() is not None]
        assert time.monotonic() < deadline, "the processes never finished importing"
        time.sleep(0.05)
    go.touch()
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    assert len({out.strip().splitlines()[-1] for out in outputs}) == 1  # one experiment, the same id for all


def test_a_store_in_a_read_only_folder_opens_without_its_init_lock(tmp_path, monkeypatch):
    """The init lock is for creating a store; where no lock file can be written (a shared read-only folder; root
    writes anywhere, so the refusal is simulated) the store is opened without it, not refused."""
    import builtins

    from nsync_bench.tracking.tracker import _store_init_lock

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with _store_init_lock(uri):
        assert (tmp_path / "mlflow.db.init-lock").exists()  # where it can, it locks
    (tmp_path / "mlflow.db.init-lock").unlink()
    real_open = builtins.open

    def refuse_lock_files(path, *args, **kwargs):
        if str(path).endswith(".init-lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refuse_lock_files)
    entered = False
    with _store_init_lock(uri):
        entered = True
    assert entered and not (tmp_path / "mlflow.db.init-lock").exists()
