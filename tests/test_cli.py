"""The CLI: fast --help without torch, teaching errors, a real smoke run through Typer."""

import subprocess
import sys

import pytest
from conftest import FAST
from typer.testing import CliRunner

from nsync_bench.cli.main import app

runner = CliRunner()

HEAVY = ("torch", "diffusers", "transformers", "mlflow")


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["profiles", "--help"], ["ui", "--help"],
                                  ["export", "--help"]])
def test_help_does_not_import_heavy_libraries(argv):
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom nsync_bench.cli.main import app\n"
        f"result = CliRunner().invoke(app, {argv!r})\nassert result.exit_code == 0, result.output\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_console_script_help():
    out = subprocess.run(["nsync-bench", "--help"], capture_output=True, text=True, check=True)
    assert "run" in out.stdout and "profiles" in out.stdout


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["run", "--style", "monet2", "--method", "ti"], ["unknown style 'monet2'", "toy-ink, toy-pastel"]),
        (["run", "--style", "toy-ink", "--method", "dreambooth"], ["unknown method 'dreambooth'", "ti"]),
        (["run", "--style", "toy-ink", "--method", "ti", "--profile", "big"], ["unknown profile", "smoke"]),
        (["run", "--style", "toy-ink", "--method", "ti", "--set", "train.steps=3"],
         ["train.steps", "train.max_steps"]),
        (["run", "--style", "toy-ink", "--method", "ti", "--set", "train.max_steps=-1"],
         ["train.max_steps", "greater than or equal to 1"]),
        (["export", "no/such/run", "--format", "a1111"], ["neither a run directory nor an MLflow run id"]),
        (["export", "no/such/run", "--format", "onnx"], ["unknown --format 'onnx'", "kohya"]),
    ],
)
def test_bad_input_gives_a_teaching_error_and_exit_2(argv, fragments):
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in text


def test_profiles_lists_and_shows_resolved_config():
    listing = runner.invoke(app, ["profiles"])
    assert listing.exit_code == 0
    for name in ("smoke", "sd15", "sd2", "matched", "paper-code"):
        assert name in listing.output
    shown = runner.invoke(app, ["profiles", "sd15", "--protocol", "paper-code"])
    assert shown.exit_code == 0
    assert '"decay_whole_vocabulary": true' in shown.output and "run key:" in shown.output


@pytest.mark.slow
def test_run_command_end_to_end(tmp_path, data_root):
    argv = ["run", "--style", "toy-ink", "--method", "ti", "--seed", "2", "--runs-dir", str(tmp_path / "runs"),
            "--data-root", str(data_root), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    for item in FAST:
        argv += ["--set", item]
    first = runner.invoke(app, argv)
    assert first.exit_code == 0, first.output
    assert "finished" in first.output
    again = runner.invoke(app, argv)
    assert again.exit_code == 0 and "not recomputed" in again.output
    restarted = runner.invoke(app, [*argv, "--restart"])
    assert restarted.exit_code == 0 and "finished" in restarted.output and "not recomputed" not in restarted.output


def test_ui_command_binds_to_localhost_unless_told_otherwise(tmp_path, monkeypatch):
    """`nsync-bench ui` with no --host must bind 127.0.0.1; --host and --port reach mlflow unchanged."""
    import nsync_bench.cli.ui as ui_module

    launched = []

    class Served:  # the server "ran" and exited cleanly (test_ui_process.py runs a real one)
        pid = 2**30  # no such process group: stopping it is a no-op

        def __init__(self, command, **kwargs):
            launched.append((command, kwargs))

        def poll(self):
            return 0

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(ui_module.subprocess, "Popen", Served)
    monkeypatch.setattr(ui_module, "_wait_until_serving", lambda proc, host, port: True)
    monkeypatch.setattr(ui_module, "_check_port_free", lambda host, port: None)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def flag(command, name):
        return command[command.index(name) + 1]

    result = runner.invoke(app, ["ui", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    (command, kwargs), = launched
    assert command[1:3] == ["-m", "mlflow"] and "ui" in command
    assert flag(command, "--host") == "127.0.0.1" and flag(command, "--port") == "5000"
    assert flag(command, "--backend-store-uri") == uri  # the runs' own store
    assert kwargs["env"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert "http://127.0.0.1:5000" in " ".join(result.output.split())

    launched.clear()
    result = runner.invoke(app, ["ui", "--tracking-uri", uri, "--host", "0.0.0.0", "--port", "5123"])
    assert result.exit_code == 0, result.output
    (command, _), = launched
    assert flag(command, "--host") == "0.0.0.0" and flag(command, "--port") == "5123"

    launched.clear()
    served = runner.invoke(app, ["ui", "--tracking-uri", "http://mlflow.internal:5000"])
    assert served.exit_code == 2 and not launched  # a server is opened in a browser, not wrapped
    assert "already a tracking server" in " ".join(served.output.split())

    for port in ("99999", "-1", "0"):  # once an OverflowError from bind(), reported as a bug
        bad = runner.invoke(app, ["ui", "--tracking-uri", uri, "--port", port])
        assert bad.exit_code == 2 and "--port" in bad.output and not launched, bad.output


@pytest.mark.slow
def test_ui_serves_the_runs_store(tmp_path):
    """`nsync-bench ui` really serves the same store: its REST API lists the store's experiment."""
    import json
    import os
    import socket
    import time
    import urllib.request

    from nsync_bench.tracking.tracker import ensure_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_experiment(uri, "ui-check")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    proc = subprocess.Popen(["nsync-bench", "ui", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    names = [e["name"] for e in json.load(response)["experiments"]]
                break
            except OSError:
                assert proc.poll() is None, "the UI process exited"
                assert time.monotonic() < deadline, "the UI did not answer within 90 s"
                time.sleep(0.5)
        assert "ui-check" in names
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def _last_logged_step(db, key: str) -> int:
    """The highest step of metric ``key`` in a SQLite MLflow store another process writes; -1 before any."""
    import contextlib
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as connection:
            row = connection.execute("SELECT MAX(step) FROM metrics WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error:  # not created yet, not migrated yet, or busy: ask again
        return -1
    return -1 if row is None or row[0] is None else int(row[0])


@pytest.mark.slow
def test_sigterm_checkpoints_the_last_completed_step(tmp_path, data_root):
    import os
    import signal
    import time

    argv = ["nsync-bench", "run", "--style", "toy-pastel", "--method", "ti", "--runs-dir", str(tmp_path / "runs"),
            "--data-root", str(data_root), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--set", "train.max_steps=400", "--set", "train.checkpoint_every=100", "--set", "eval.max_prompts=2",
            "--set", "eval.num_inference_steps=2"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    # Poll the store for a training step past the periodic checkpoint (train.log_every = 1 logs every step).
    while _last_logged_step(tmp_path / "mlflow.db", "train/loss") <= 101:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the run never logged a step past 101"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted" in output
    log = next((tmp_path / "runs").rglob("run.log")).read_text()
    assert "saving a checkpoint to resume from" in log
    steps = [int(p.name.split("-")[1]) for p in (tmp_path / "runs").rglob("checkpoint-*")]
    assert max(steps) > 100  # the interrupted step, not only the periodic checkpoint
    assert os.path.exists(tmp_path / "mlflow.db")
