"""Default locations of data, runs, caches and the MLflow store; each can be overridden.

Precedence for each: explicit argument (CLI option) > environment variable > default.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "NSYNC_BENCH_DATA_ROOT"
RUNS_DIR_ENV = "NSYNC_BENCH_RUNS_DIR"
CACHE_DIR_ENV = "NSYNC_BENCH_CACHE_DIR"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


def default_experiment(profile: str) -> str:
    """The MLflow experiment of a profile's runs when none is named (``--experiment``)."""
    return f"nsync-bench-{profile}"


def data_root(override: str | Path | None = None) -> Path:
    """Style datasets: ``<root>/<style>/{train,test}/``. Default: the user data dir."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV]).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("nsync-bench")) / "data"


def cache_dir(override: str | Path | None = None) -> Path:
    """Derived files that can be rebuilt (tokenizer files, feature caches). Default: user cache dir."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_cache_dir("nsync-bench"))


def runs_dir(override: str | Path | None = None) -> Path:
    """Run outputs (config, checkpoints, adapter, evaluation images). Default: ``./runs``."""
    if override:
        return Path(override).expanduser().resolve()
    return Path(os.environ.get(RUNS_DIR_ENV, "runs")).expanduser().resolve()


def tracking_uri(override: str | None = None) -> str:
    """MLflow store. Default: SQLite ``./mlflow.db`` in the working directory (no server needed)."""
    if override:
        return override
    if os.environ.get(TRACKING_URI_ENV):
        return os.environ[TRACKING_URI_ENV]
    return f"sqlite:///{Path('mlflow.db').resolve()}"


def artifact_root(uri: str) -> str | None:
    """Where a local SQLite store keeps artifacts: ``mlartifacts/`` beside the database file.

    None for server URIs: the server decides.
    """
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return None
