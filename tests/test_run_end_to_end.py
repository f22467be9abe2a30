"""A smoke TI run end to end: MLflow record, artifacts, adapter reload, idempotence."""

import mlflow
import numpy as np
import pytest
import torch
from conftest import FAST
from helpers import assert_regenerates
from mlflow.tracking import MlflowClient

from nsync_bench.config.recipes import resolve_config
from nsync_bench.models.diffusers_pipeline import build_pipeline
from nsync_bench.models.tiny import build_tiny_components
from nsync_bench.pipeline.runner import run

# Whole runs (train, generate, score, log): the slow tier (`pytest -m "not slow"` leaves them out).
pytestmark = pytest.mark.slow


def test_smoke_run_logs_tags_params_metrics_and_artifacts(run_options):
    result = run(style="toy-pastel", method="ti", seed=0, overrides=FAST, options=run_options)
    assert not result.skipped

    mlflow.set_tracking_uri(run_options.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["test"])
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["status"] == "FINISHED"
    expected_tags = {"style": "toy-pastel", "method": "ti", "seed": "0", "profile": "smoke",
                     "protocol": "matched", "run_key": result.run_key}
    for key, value in expected_tags.items():
        assert row[f"tags.{key}"] == value
    assert len(row["tags.git_sha"]) >= 7
    assert row["params.train.max_steps"] == "6"
    assert row["params.model.source"] == "tiny"
    assert row["params.ti.initializer_token"] == "painting"

    client = MlflowClient(run_options.tracking_uri)
    history = client.get_metric_history(result.mlflow_run_id, "train/loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(m.value) and m.value > 0 for m in history)
    assert len(client.get_metric_history(result.mlflow_run_id, "train/step_time")) == 6

    def listing(path=None):
        found = []
        for item in client.list_artifacts(result.mlflow_run_id, path):
            found += listing(item.path) if item.is_dir else [item.path]
        return found

    artifacts = set(listing())
    assert {"adapter/learned_embeds.safetensors", "config.json", "eval/manifest.jsonl", "eval/grid.png",
            "eval/per_image_scores.csv"} <= artifacts
    assert "eval/images/00000.png" in artifacts

    # The four metrics, each with direction, image counts and a smoke implementation id.
    for name, direction in (("fid", "lower"), ("kid", "lower"), ("cmmd", "lower"), ("csd", "higher")):
        assert np.isfinite(row[f"metrics.metrics/{name}"])
        assert row[f"tags.metric.{name}.direction"] == f"{direction} is better"
        assert row[f"tags.metric.{name}.n_generated"] == "2"  # eval.max_prompts=2
        assert row[f"tags.metric.{name}.n_real"] == "8"  # the whole toy test split
        assert "smoke-random:" in row[f"tags.metric.{name}.implementation"]
    assert "metrics.metrics/kid_std" in row
    per_image = (result.run_dir / "eval" / "per_image_scores.csv").read_text().splitlines()
    assert per_image[0] == "index,file,source,seed,prompt,csd" and len(per_image) == 3


def test_same_run_key_is_not_recomputed(run_options):
    first = run(style="toy-ink", method="ti", seed=1, overrides=FAST, options=run_options)
    second = run(style="toy-ink", method="ti", seed=1, overrides=FAST, options=run_options)
    assert second.skipped and second.run_key == first.run_key
    mlflow.set_tracking_uri(run_options.tracking_uri)
    assert len(mlflow.search_runs(experiment_names=["test"])) == 1


def test_saved_adapter_regenerates_the_first_evaluation_image(run_options):
    result = run(style="toy-pastel", method="ti", seed=0, overrides=FAST, options=run_options)
    config = resolve_config(style="toy-pastel", method="ti", seed=0, profile="smoke", overrides=FAST)
    torch.set_num_threads(config.cpu_threads)

    # A fresh base model plus diffusers' own loader: what a user of the artifact would do.
    pipe = build_pipeline(build_tiny_components(seed=config.model.tiny_seed, resolution=config.model.resolution))
    pipe.load_textual_inversion(str(result.run_dir / result.adapter))
    assert_regenerates(pipe, result.run_dir, config, "in the style of <nsync-style>")


def test_a_multi_process_launch_is_refused_not_duplicated(run_options, monkeypatch):
    import pytest

    from nsync_bench.errors import NsyncBenchError

    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(NsyncBenchError, match="WORLD_SIZE=4"):
        run(style="toy-pastel", method="ti", overrides=FAST, options=run_options)


def test_a_dead_tracking_server_is_a_fast_teaching_error(run_options):
    import socket
    import time

    import pytest

    from nsync_bench.errors import NsyncBenchError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    run_options.tracking_uri = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with pytest.raises(NsyncBenchError, match=f"127.0.0.1:{port}.*does not answer"):
        run(style="toy-pastel", method="ti", overrides=FAST, options=run_options)
    assert time.monotonic() - started < 30
    assert not list(run_options.runs_dir.rglob("checkpoints"))  # nothing trained


def test_a_style_without_data_fails_before_any_run_exists(run_options):
    import pytest

    from nsync_bench.errors import DataError

    with pytest.raises(DataError, match="nsync-bench data fetch monet"):
        run(style="monet", method="ti", overrides=FAST, options=run_options)
    assert not (run_options.runs_dir).exists() or not list(run_options.runs_dir.rglob("config.json"))
    mlflow.set_tracking_uri(run_options.tracking_uri)
    experiment = mlflow.get_experiment_by_name("test")
    assert experiment is None or len(mlflow.search_runs([experiment.experiment_id])) == 0
