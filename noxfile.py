"""Sessions: tests (default suite, CPU, offline), smoke (the README's main job: a toy-world experiment end to
end), pipeline (every code path on random weights, fast), lint (ruff, mypy).

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
    """The default test suite (offline, CPU); the toy world's positive control has its own session."""
    session.install("-e", ".[dev]")
    session.run("pytest", *(session.posargs or ["-q", "-m", "not world_control"]), env=OFFLINE)


@nox.session
def world_control(session: nox.Session) -> None:
    """The toy world's five-seed positive control as a test (docs/toy-world.md; ~20 min on 2 cores):
    TI must beat the untrained model prompted with the style's name on the in-span target."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-q", "-m", "world_control", *session.posargs, env=OFFLINE)


@nox.session
def tests_fast(session: nox.Session) -> None:
    """The fast tier for frequent runs: everything but the tests marked slow (end-to-end runs, sweeps,
    servers, browser, benchmarks), spread over the cores (pytest-xdist, at most four workers): about
    two minutes on 2 cores. CI runs the full ``tests`` session, one process."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-m", "not slow", "-n", "auto", "--maxprocesses", "4", *(session.posargs or ["-q"]),
                env=OFFLINE)


@nox.session(venv_backend="uv")
def tests_lowest(session: nox.Session) -> None:
    """The fast tier at the lowest versions pyproject.toml allows (uv's lowest-direct resolution: every direct
    dependency at its floor, the rest as new as those allow), so a floor is a tested claim, not a guess.
    Needs uv (``pip install nox uv``); about 7 minutes on 2 cores with a fresh virtualenv (docs/running.md)."""
    session.install("--resolution", "lowest-direct", "-e", ".[dev]")
    session.run("python", "-c", _VERSIONS)
    # The frozen regression values are the default stack's digits by design (their test says so): other
    # library versions move them, which is what that test exists to show; every other fast test runs.
    session.run("pytest", "-m", "not slow", "-n", "auto", "--maxprocesses", "4", "-p", "no:cacheprovider",
                "--deselect", "tests/test_regression_values.py", *(session.posargs or ["-q"]), env=OFFLINE)


_VERSIONS = ("from importlib.metadata import version as v; print('lowest allowed versions:', ', '.join(f'{n} {v(n)}' "
             "for n in ('torch', 'torchvision', 'diffusers', 'transformers', 'peft', 'mlflow', 'numpy', 'pydantic')))")


@nox.session
def smoke(session: nox.Session) -> None:
    """The README's main job: a real effect on the toy world (baselines/sweeps/toy-quick.toml), end to end in
    a scratch directory. The untrained base model prompted with the style's name (ldm) and TI on world-dusk,
    6 shared seeds (train, generate, score, log to MLflow), then the report with the real-data floor, the
    image grid and the claims check of baselines/claims/toy-quick.toml; fails unless its claim is supported.
    About 5 minutes on 2 cores after install."""
    session.install("-e", ".[dev]")
    env, workdir = _scratch(session)
    session.run("nsync-bench", "sweep", "--file", "toy-quick", env=env)
    report = os.path.join(workdir, "report")
    session.run("nsync-bench", "report", "--experiment", "toy-quick", "--claims", "toy-quick", "--out", report,
                env=env)
    _require_supported(session, os.path.join(report, "claims.csv"))
    session.log(f"the report: {os.path.join(report, 'index.html')} (or report.md): the verdict, "
                "the floor row and the image grid")


@nox.session
def pipeline(session: nox.Session) -> None:
    """Every code path on the random-weight `smoke` profile (about 1 minute): ldm, TI and NSYNC on a
    procedural style with two shared seeds, then the report. Its numbers mean nothing by construction
    (random components); it checks the pipeline, fast."""
    session.install("-e", ".[dev]")
    env, workdir = _scratch(session)
    session.run("nsync-bench", "sweep", "--profile", "smoke", "--styles", "toy-pastel", "--methods", "ldm,ti,nsync",
                "--seeds", "0,1", "--max-parallel", "2", "--experiment", "smoke-job", env=env)
    session.run("nsync-bench", "report", "--experiment", "smoke-job", "--out", os.path.join(workdir, "report"),
                env=env)


def _scratch(session: nox.Session) -> tuple[dict[str, str], str]:
    """A fresh store, runs and data folder every time: the job reruns rather than skipping finished runs."""
    workdir = session.create_tmp()
    shutil.rmtree(workdir)
    os.makedirs(workdir)
    env = {**OFFLINE, "NSYNC_BENCH_DATA_ROOT": os.path.join(workdir, "data"),
           "NSYNC_BENCH_RUNS_DIR": os.path.join(workdir, "runs"),
           "NSYNC_BENCH_CACHE_DIR": os.path.join(workdir, "cache"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{os.path.join(workdir, 'mlflow.db')}"}
    return env, workdir


def _require_supported(session: nox.Session, claims_csv: str) -> None:
    """The main job exists to show a real effect: say each verdict, and fail if none is supported (run as a
    session command, so ``--install-only`` skips it like the others)."""
    session.run("python", "-c", _REQUIRE_SUPPORTED, claims_csv)


_REQUIRE_SUPPORTED = """
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
for r in rows:
    print(f"claim {r['claim']} ({r['style']}, {r['metric']}): {r['verdict']} (n={r['n']}, wins {r['wins']}, "
          f"p_t adj {r['p_t_adj']}, p_perm adj {r['p_perm_adj']})")
if not any(r["verdict"] == "supported" for r in rows):
    sys.exit(f"no claim in {sys.argv[1]} is supported by the declared rule: the main job shows no effect")
"""


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check on the package, tests and noxfile; mypy on the package (its config: pyproject.toml [tool.mypy]).
    mypy needs the package's dependencies installed to see their types, hence the full install."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", "nsync_bench", "tests", "noxfile.py")
    session.run("mypy")


@nox.session
def server(session: nox.Session) -> None:
    """docs/scale.md's "MLflow at scale" for real: a throwaway PostgreSQL cluster on 127.0.0.1 (Debian's
    postgresql package), `mlflow server` on it with a separate artifact root, a 2-worker smoke sweep and
    its report against the server; everything it starts is stopped (.ci/server_stack.py)."""
    session.install("-e", ".[dev,server]")
    workdir = os.path.join(session.create_tmp(), "server-stack")
    session.run("python", ".ci/server_stack.py", workdir, env=OFFLINE)


@nox.session
def scale(session: nox.Session) -> None:
    """SD 1.5 and SD 2-base at full size with random weights through the real loading path (CPU, ~10 min):
    a few steps of every method, checkpoint + resume, generation, adapter reload, the metric extractors.
    The random-weight snapshots are built once into the cache dir (NSYNC_BENCH_CACHE_DIR/random-arch)."""
    session.install("-e", ".[dev]")
    workdir = session.create_tmp()
    work = os.path.join(workdir, "scale")
    shutil.rmtree(work, ignore_errors=True)  # fresh runs every time (the snapshot cache is kept)
    session.run("python", "-m", "nsync_bench.checks.scale", "--work", work, *session.posargs, env=OFFLINE)


@nox.session
def gpu(session: nox.Session) -> None:
    """The GPU check (full-size SD 1.5 at random weights, 512 px, fp16): JSON to gpu-check.json. Refuses
    without CUDA. ``nox -s gpu -- --profile sd2-arch`` checks SD 2-base."""
    session.install("-e", ".[dev]")
    env = {k: v for k, v in OFFLINE.items() if k != "CUDA_VISIBLE_DEVICES"}
    args = session.posargs or ["--profile", "sd15-arch"]
    with open("gpu-check.json", "w") as out:
        session.run("nsync-bench", "bench", *args, "--device", "cuda", "--json", env=env, stdout=out)


@nox.session
def wheelhouse(session: nox.Session) -> None:
    """Wheels for the GPU check's offline target (docs/scale.md, "The GPU check"): only what the check imports and
    the target lacks, for the target's Python and platform (default 3.12, manylinux x86-64), at most 64 MiB.
    Options after --, e.g. ``nox -s wheelhouse -- --python-version 3.11 --platform manylinux_2_28_x86_64``."""
    session.install("-e", ".[dev]")  # the versions the tests ran with are the ones carried
    session.run("python", "-m", "nsync_bench.perf.wheelhouse", "--out", "wheelhouse", *session.posargs)
    session.log("On the GPU machine: bash .ci/gpu_check.sh (installs wheelhouse/ and prints the check's JSON)")
