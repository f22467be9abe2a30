"""Start-up benchmark (``nsync-bench bench --only startup``): a short smoke run against an import.

Reports the wall time of a 10-step smoke run (``nsync-bench run``, in a fresh process, caches and
MLflow's SQLite store warm, as for a user's second run) as a ratio to ``python -c "from diffusers import
StableDiffusionPipeline"`` on the same machine, in the same benchmark: the import is the floor any
diffusers-based tool pays, so the ratio says how much the run adds on top (target <= 1.5).
Medians over ``repeats`` after one warm-up of each (the first run also renders the toy style and
fills the caches; creating a new SQLite store costs its schema migrations once, several seconds).
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from nsync_bench.perf.timing import time_calls

BASELINE = "from diffusers import StableDiffusionPipeline"
RUN_ARGS = ["run", "--style", "toy-pastel", "--method", "ti", "--set", "train.max_steps=10"]


def _call(argv: list[str], env: dict[str, str]) -> None:
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bench_startup(*, repeats: int = 2) -> dict[str, Any]:
    """Median wall times of the import and of the 10-step smoke run, and their ratio."""
    with tempfile.TemporaryDirectory(prefix="nsync-bench-startup-") as tmp_name:
        tmp = Path(tmp_name)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "NSYNC_BENCH_DATA_ROOT": str(tmp / "data"),
               "NSYNC_BENCH_CACHE_DIR": str(tmp / "cache"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"}
        baseline = time_calls(lambda: _call([sys.executable, "-c", BASELINE], env), warmup=1, repeats=repeats)
        counter = itertools.count()

        def smoke_run() -> None:
            # A fresh runs folder and experiment each time, so the run is not skipped as finished.
            k = next(counter)
            _call([sys.executable, "-m", "nsync_bench", *RUN_ARGS, "--experiment", f"startup-{k}"],
                  {**env, "NSYNC_BENCH_RUNS_DIR": str(tmp / f"runs{k}")})

        runs = time_calls(smoke_run, warmup=1, repeats=repeats)
    import_s, run_s = statistics.median(baseline), statistics.median(runs)
    return {"baseline": BASELINE, "baseline_s": import_s, "run": "nsync-bench " + " ".join(RUN_ARGS),
            "run_s": run_s, "ratio": run_s / import_s, "repeats": repeats, "target_ratio": 1.5}
