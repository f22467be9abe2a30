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


from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

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


@pytest.fixture(autouse=True)
def _default_store_outside_the_project(tmp_path_factory, monkeypatch):
    """The default MLflow store is ./mlflow.db; a command a test runs without --tracking-uri (a bad-input case
    of `run` starts the MLflow helper before it refuses) would create it in the project. Each test gets its own
    default instead; a test's own setting still wins."""
    store = tmp_path_factory.mktemp("default-store") / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")


@pytest.fixture(autouse=True, scope="session")
def _the_suite_leaves_the_project_as_it_found_it():
    """Nothing a test does may write into the project's root (a stray mlflow.db and lock files once landed
    there, one of them in a commit). Dot-folders (caches, virtualenvs) are the tools', not the tests'."""
    def visible():
        return {p.name for p in PROJECT_ROOT.iterdir() if not p.name.startswith(".") and p.name != "__pycache__"}

    before = visible()
    yield
    new = sorted(visible() - before)
    if new:
        pytest.fail(f"the tests wrote into the project root {PROJECT_ROOT}: {new}", pytrace=False)
