"""Test-wide settings: offline, CPU, and a private MLflow store per test."""

import os

# Without these, one accidental hub call hangs for minutes.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Tiny models gain nothing from intra-op threads, and OpenMP spin-waits collapse (100x slower)
# when another process shares the 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")


import pytest

# Small enough for seconds per run, large enough to exercise checkpoints and resume.
FAST = [
    "train.max_steps=6",
    "train.checkpoint_every=3",
    "eval.num_inference_steps=3",
    "eval.max_prompts=2",
    "negatives.num_inference_steps=3",
]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """Toy styles rendered once per test session."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def run_options(tmp_path, data_root):
    """RunOptions writing runs and a private SQLite MLflow store under tmp_path."""
    from nsync_bench.pipeline.runner import RunOptions

    return RunOptions(
        runs_dir=tmp_path / "runs",
        data_root=data_root,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        experiment="test",
    )
