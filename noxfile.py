"""Sessions: tests (default suite, CPU, offline), smoke (the README's main job end to end), lint.

Each session installs the project into its own virtualenv; ``nox -s tests`` is all a fresh
machine needs.
"""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "CUDA_VISIBLE_DEVICES": "",
}


@nox.session
def tests(session: nox.Session) -> None:
    """The default test suite (offline, CPU)."""
    session.install("-e", ".[dev]")
    session.run("pytest", *(session.posargs or ["-q"]), env=OFFLINE)


@nox.session
def tests_fast(session: nox.Session) -> None:
    """The fast tier for frequent runs: everything but the tests marked slow (end-to-end runs, sweeps,
    servers, browser, benchmarks); about 1.5 minutes on 2 cores. CI runs the full ``tests`` session."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-m", "not slow", *(session.posargs or ["-q"]), env=OFFLINE)


@nox.session
def smoke(session: nox.Session) -> None:
    """The README's main job on the smoke default, end to end in a scratch directory: TI and NSYNC on
    a toy style with two shared seeds (train, generate, score, log to MLflow), then the report."""
    session.install("-e", ".[dev]")
    workdir = session.create_tmp()
    shutil.rmtree(workdir)  # a fresh store every time: the job reruns rather than skipping finished runs
    os.makedirs(workdir)
    env = {**OFFLINE, "NSYNC_BENCH_DATA_ROOT": os.path.join(workdir, "data"),
           "NSYNC_BENCH_RUNS_DIR": os.path.join(workdir, "runs"),
           "NSYNC_BENCH_CACHE_DIR": os.path.join(workdir, "cache"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{os.path.join(workdir, 'mlflow.db')}"}
    session.run("nsync-bench", "sweep", "--profile", "smoke", "--styles", "toy-pastel", "--methods", "ti,nsync",
                "--seeds", "0,1", "--max-parallel", "2", "--experiment", "smoke-job", env=env)
    session.run("nsync-bench", "report", "--experiment", "smoke-job", "--out", os.path.join(workdir, "report"),
                env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check on the package, tests and noxfile."""
    session.install("ruff")
    session.run("ruff", "check", "nsync_bench", "tests", "noxfile.py")
