"""Start-up benchmark (``nsync-bench bench --only startup``): a short smoke run against an import.

Reports the wall time of a 10-step smoke run (``nsync-bench run``, in a fresh process, caches and
MLflow's SQLite store warm, as for a user's second run) as a ratio to ``python -c "from diffusers import
StableDiffusionPipeline"`` on the same machine, in the same benchmark: the import is the floor any
diffusers-based tool pays, so the ratio says how much the run adds on top (target <= 1.5).
Medians over ``repeats`` after one warm-up of each (the first run also renders the toy style and
fills the caches; creating a new SQLite store costs its schema migrations once, several seconds).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BASELINE = "from diffusers import StableDiffusionPipeline"
RUN_ARGS = ["run", "--style", "toy-pastel", "--method", "ti", "--set", "train.max_steps=10"]


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def bench_startup(*, repeats: int = 2) -> dict[str, Any]:
    """Median wall times of the import and of the 10-step smoke run, and their ratio."""
    with tempfile.TemporaryDirectory(prefix="nsync-bench-startup-") as tmp_name:
        tmp = Path(tmp_name)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "NSYNC_BENCH_DATA_ROOT": str(tmp / "data"),
               "NSYNC_BENCH_CACHE_DIR": str(tmp / "cache"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"}
        baseline = [_timed([sys.executable, "-c", BASELINE], env) for _ in range(repeats + 1)][1:]
        runs = []
        for k in range(repeats + 1):
            # A fresh runs folder and experiment each time, so the run is not skipped as finished.
            run_env = {**env, "NSYNC_BENCH_RUNS_DIR": str(tmp / f"runs{k}")}
            runs.append(_timed([sys.executable, "-m", "nsync_bench", *RUN_ARGS, "--experiment", f"startup-{k}"],
                               run_env))
        runs = runs[1:]
    import_s, run_s = statistics.median(baseline), statistics.median(runs)
    return {"baseline": BASELINE, "baseline_s": import_s, "run": "nsync-bench " + " ".join(RUN_ARGS),
            "run_s": run_s, "ratio": run_s / import_s, "repeats": repeats, "target_ratio": 1.5}
