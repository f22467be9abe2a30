"""Start-up benchmark (``nsync-bench bench --only startup``): a short smoke run against an import.

Reports the wall time of a 10-step smoke run (``nsync-bench run``, in a fresh process, caches and
MLflow's SQLite store warm, as for a user's second run) as a ratio to ``python -c "from diffusers import
StableDiffusionPipeline"`` on the same machine, in the same benchmark: the import is the floor any
diffusers-based tool pays, so the ratio says how much the run adds on top (target <= 1.5).

The run marks its phases (:mod:`nsync_bench.timeline`), so the time to the first training step and the
fixed cost after training (evaluation images, scoring, MLflow) are reported separately. Import and
run alternate, so a machine shared with other jobs slows both alike; medians over ``repeats`` after
one warm-up of each (the first run also renders the toy style and fills the caches; creating a new
SQLite store costs its schema migrations once, several seconds).
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

from nsync_bench import timeline

BASELINE = "from diffusers import StableDiffusionPipeline"
RUN_ARGS = ["run", "--style", "toy-pastel", "--method", "ti", "--set", "train.max_steps=10"]


def _call(argv: list[str], env: dict[str, str]) -> None:
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def timed_run(args: list[str], env: dict[str, str], marks_file: Path) -> dict[str, float]:
    """Run ``nsync-bench <args>`` in a fresh process; the seconds of its phases (:func:`timeline.phases`)."""
    marks_file.unlink(missing_ok=True)
    started = time.time()
    _call([sys.executable, "-m", "nsync_bench", *args], {**env, timeline.ENV: str(marks_file)})
    return timeline.phases(started, timeline.read(marks_file), time.time())


def _timed_import(env: dict[str, str]) -> float:
    started = time.perf_counter()
    _call([sys.executable, "-c", BASELINE], env)
    return time.perf_counter() - started


def load_note() -> str:
    """The machine's load averages and cores, for reading a benchmark run on a shared machine."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load average unavailable"
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def bench_startup(*, repeats: int = 2) -> dict[str, Any]:
    """Median wall times of the import and of the 10-step smoke run, its phases, and their ratio."""
    load_before = load_note()
    with tempfile.TemporaryDirectory(prefix="nsync-bench-startup-") as tmp_name:
        tmp = Path(tmp_name)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "NSYNC_BENCH_DATA_ROOT": str(tmp / "data"),
               "NSYNC_BENCH_CACHE_DIR": str(tmp / "cache"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"}

        def smoke_run(k: int) -> dict[str, float]:
            # A fresh runs folder and experiment each time, so the run is not skipped as finished.
            return timed_run([*RUN_ARGS, "--experiment", f"startup-{k}"],
                             {**env, "NSYNC_BENCH_RUNS_DIR": str(tmp / f"runs{k}")}, tmp / "marks.jsonl")

        _timed_import(env)  # warm-up: the file cache
        smoke_run(0)  # warm-up: data, caches, the SQLite schema
        imports, runs = [], []
        for k in range(1, repeats + 1):  # alternating, so load from other jobs hits both
            imports.append(_timed_import(env))
            runs.append(smoke_run(k))
    import_s = statistics.median(imports)
    run_phases = {name: statistics.median(r[name] for r in runs) for name in runs[0] if all(name in r for r in runs)}
    run_s = run_phases["total"]
    return {"baseline": BASELINE, "baseline_s": import_s, "run": "nsync-bench " + " ".join(RUN_ARGS),
            "run_s": run_s, "ratio": run_s / import_s, "phases_s": run_phases,
            "to_first_step_ratio": run_phases.get("to_first_step", float("nan")) / import_s,
            "repeats": repeats, "target_ratio": 1.5, "load": [load_before, load_note()]}
