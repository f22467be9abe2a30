"""MLflow as a researcher expects it: experiment kind, dataset inputs, source, description, system
metrics, and the MLflow UI itself (headless Chromium) showing the runs table with datasets."""

import json
import os
import shlex
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST
from mlflow.tracking import MlflowClient
from PIL import Image

from nsync_bench.config.recipes import resolve_config
from nsync_bench.data.run_key import run_key
from nsync_bench.pipeline.runner import RunOptions, run
from nsync_bench.tracking.mlflow_ui import (
    EXPERIMENT_KIND,
    log_dataset_inputs,
    reproduce_command,
    system_metrics_enabled,
)

RUN_NAME = "toy-pastel/nsync/seed0"


@pytest.fixture(scope="module")
def nsync_run(tmp_path_factory, data_root):
    """One smoke NSYNC run (train, test and negative sets) with system metrics sampled every second."""
    tmp = tmp_path_factory.mktemp("mlflow-ui")
    os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = "1"
    try:
        options = RunOptions(runs_dir=tmp / "runs", data_root=data_root, tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
                             experiment="ui", system_metrics=True)
        result = run(style="toy-pastel", method="nsync", seed=0, overrides=FAST, options=options)
    finally:
        del os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"]
    return {"result": result, "uri": options.tracking_uri, "tmp": tmp, "data_root": data_root}


def run_key_of(record: dict) -> str:
    from nsync_bench.config.run_config import RunConfig

    return run_key(RunConfig.model_validate(record["config"]), record["data_identity"])


def test_run_logs_its_three_datasets_with_the_identity_digests(nsync_run):
    result = nsync_run["result"]
    client = MlflowClient(nsync_run["uri"])
    inputs = client.get_run(result.mlflow_run_id).inputs.dataset_inputs
    found = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset for i in inputs}
    assert set(found) == {"training", "evaluation", "negatives"}

    # The digests derive from the identity in the run's config.json (the one its run key hashes).
    from nsync_bench.data.identity import dataset_inputs, files_identity, image_files

    record = json.loads((result.run_dir / "config.json").read_text())
    assert run_key_of(record) == result.run_key
    negatives = Path(json.loads(found["negatives"].source)["uri"])
    rendered = files_identity("negatives", image_files(negatives), str(negatives))
    expected = dataset_inputs(record["data_identity"], rendered)
    for context, dataset in found.items():
        assert dataset.digest == expected[context]["digest"]
        assert dataset.name == expected[context]["name"]
        assert json.loads(dataset.source)["uri"] == expected[context]["source"]
    tags = client.get_run(result.mlflow_run_id).data.tags
    assert tags["data_identity.negatives.rendered"] == rendered["images"]
    assert found["training"].name == "toy-pastel/train" and found["evaluation"].name == "toy-pastel/test"


def test_experiment_source_description_and_system_metrics(nsync_run):
    result = nsync_run["result"]
    client = MlflowClient(nsync_run["uri"])
    experiment = client.get_experiment_by_name("ui")
    assert experiment.tags["mlflow.experimentKind"] == EXPERIMENT_KIND
    mlflow_run = client.get_run(result.mlflow_run_id)
    tags = mlflow_run.data.tags
    assert tags["mlflow.source.name"] == "nsync-bench" and tags["mlflow.source.type"] == "LOCAL"
    assert len(tags["mlflow.source.git.commit"]) == 40
    assert "nsync-bench run --style toy-pastel --method nsync --seed 0" in tags["mlflow.note.content"]
    # The adapter as a logged model whose metrics are tied to the evaluation set (MLflow's Models tab).
    [model] = client.search_logged_models([experiment.experiment_id])
    assert model.name == "toy-pastel-nsync-seed0" and model.source_run_id == result.mlflow_run_id
    tied = {m.key: (m.value, m.dataset_name, m.dataset_digest) for m in model.metrics}
    test_set = next(i.dataset for i in mlflow_run.inputs.dataset_inputs if i.tags[0].value == "evaluation")
    assert tied["metrics/csd"] == (pytest.approx(result.metrics["metrics/csd"]), test_set.name, test_set.digest)
    system = [k for k in mlflow_run.data.metrics if k.startswith("system/")]
    assert "system/cpu_utilization_percentage" in system and "system/system_memory_usage_megabytes" in system


def test_the_description_reproduces_the_run_key():
    overrides = [*FAST, "prompts.mode=templates", "lora.style_token=\"10\"", "nsync.eps=1e-9"]
    config = resolve_config(style="toy-ink", method="nsync", seed=2, profile="smoke", overrides=overrides)
    argv = shlex.split(reproduce_command(config, "my-exp"))
    assert argv[:2] == ["nsync-bench", "run"] and argv[-2:] == ["--experiment", "my-exp"]
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert "lora.style_token=\"10\"" in sets  # a string that looks like a number stays a string
    again = resolve_config(style="toy-ink", method="nsync", seed=2, profile="smoke", overrides=sets)
    assert run_key(again) == run_key(config)


def test_dataset_inputs_store_the_digest_given(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("x")).info.run_id
    identity = {"training": {"name": "s/train", "source": "/d/s/train", "digest": "0123456789abcdef"},
                "evaluation": {"name": "s/test", "source": "/d/s/test", "digest": "fedcba9876543210"},
                "negatives": {"name": "s/negatives", "source": "/d/neg", "digest": "a" * 36}}
    log_dataset_inputs(client, run_id, identity)
    log_dataset_inputs(client, run_id, identity)  # a resumed run logs them again: no duplicates
    inputs = client.get_run(run_id).inputs.dataset_inputs
    assert sorted((i.tags[0].value, i.dataset.digest) for i in inputs) == sorted(
        (c, v["digest"]) for c, v in identity.items())
    with pytest.raises(ValueError, match="36"):
        log_dataset_inputs(client, run_id, {"training": {"name": "n", "source": "s", "digest": "b" * 64}})
    with pytest.raises(ValueError, match="context"):
        log_dataset_inputs(client, run_id, {"train": {"name": "n", "source": "s", "digest": "b"}})


def test_system_metrics_default_on_for_real_profiles_off_for_smoke(monkeypatch):
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", raising=False)
    assert system_metrics_enabled("sd15", None) and not system_metrics_enabled("smoke", None)
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    assert not system_metrics_enabled("sd15", None)
    assert system_metrics_enabled("smoke", True)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.browser
def test_mlflow_ui_opens_on_the_runs_table_with_datasets(nsync_run, tmp_path):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    from nsync_bench.cli.ui import ui_command, ui_url

    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = ui_command(nsync_run["uri"], "127.0.0.1", port)
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180  # the server migrates a fresh store first; slow on a busy machine
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "mlflow ui did not start"
                time.sleep(1)
        experiment_id = MlflowClient(nsync_run["uri"]).get_experiment_by_name("ui").experiment_id
        url = ui_url("127.0.0.1", port, experiment_id)
        flags = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1600,900", "--virtual-time-budget=30000"]
        dom = subprocess.run([*flags, f"--user-data-dir={tmp_path / 'p1'}", "--dump-dom", url], capture_output=True,
                             text=True, timeout=240, check=True).stdout
        shot = tmp_path / "mlflow-ui.png"
        subprocess.run([*flags, f"--user-data-dir={tmp_path / 'p2'}", f"--screenshot={shot}", url],
                       capture_output=True, timeout=240, check=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    # The runs table (ag-grid) with the run's name and a filled Dataset column, not the GenAI overview.
    assert 'role="grid"' in dom or "ag-root" in dom
    assert RUN_NAME in dom
    assert ">Dataset<" in dom and "toy-pastel/train" in dom
    assert ">Models<" in dom and "toy-pastel-nsync-seed0" in dom  # links to the model and its metric columns
    assert "Token Usage" not in dom  # the GenAI overview's panels
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 10, "the screenshot looks blank"
    keep = os.environ.get("NSYNC_BENCH_KEEP_SCREENSHOTS")
    if keep:  # for the record / a human look
        shutil.copy(shot, keep)
