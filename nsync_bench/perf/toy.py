"""Toy-world benchmark (``nsync-bench bench --only toy``): the toy path as it was against the new one.

Two measurements, each alternating today's settings and the new ones in one benchmark run on the
same machine (so load from other jobs hits both), reported as ratios of medians:

* ``generation`` — the 96 evaluation images of one seed (:mod:`nsync_bench.perf.toy_generation`);
* ``seed`` — one toy seed as ``nsync-bench run`` does it: a fresh process, Textual Inversion at the toy
  profile's budget (1,200 steps), its evaluation images, scoring and MLflow logging to a scratch SQLite
  store, with the phases of :mod:`nsync_bench.timeline`.

"Today" is the toy profile with :data:`LEGACY` set, the values its speed levers had before they were
changed; every lever is a config field, so the old path stays selectable the same way
(``--set eval.cpu_precision=fp32 --set eval.batch_size=32``). The metric values of both variants
are reported with their differences: levers that are exact give equal values, the others a measured
change (docs/toy-world.md, "Where the time goes").
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from nsync_bench.perf.startup import load_note, timed_run

STYLE = "world-dusk"
# A seed outside the ranges any experiment of the project uses to decide something (0-99).
SEED = 200
# The toy profile's speed-lever settings before they were changed (today's path, for comparison).
LEGACY = ["eval.cpu_precision=fp32", "eval.batch_size=32"]
TARGETS = {"seed_ratio": 3.0, "generation_ratio": 4.0}


def _result_metrics(runs_dir: Path) -> dict[str, float]:
    [result] = list(runs_dir.rglob("result.json"))
    metrics = json.loads(result.read_text())["metrics"]
    return {k.removeprefix("metrics/"): v for k, v in metrics.items()
            if k.startswith("metrics/") and not k.endswith("_std")}


def bench_seed(work: Path, *, seed: int, repeats: int, overrides: list[str] | None = None) -> dict[str, Any]:
    """One toy seed (a TI run end to end in a fresh process), today's settings against the new ones;
    ``overrides`` (both variants) shrink it for a quick look, e.g. ``train.max_steps=50``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NSYNC_BENCH_CACHE_DIR": str(work / "cache"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    budget = list(overrides or [])
    base = ["run", "--style", STYLE, "--method", "ti", "--profile", "toy", "--seed", str(seed)]

    def sets(overrides: list[str]) -> list[str]:
        return [arg for item in [*overrides, *budget] for arg in ("--set", item)]

    # Warm-up: the style's data, the latent and real-feature caches and the SQLite schema, for both alike.
    timed_run([*base, "--experiment", "warm-up", *sets(["train.max_steps=2", "eval.max_prompts=2"])],
              {**env, "NSYNC_BENCH_RUNS_DIR": str(work / "runs-warm-up")}, work / "marks.jsonl")
    variants = {"today": LEGACY, "new": []}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    metrics: dict[str, dict[str, float]] = {}
    for r in range(repeats):
        for name, overrides in variants.items():
            runs_dir = work / f"runs-{name}-{r}"
            runs[name].append(timed_run([*base, "--experiment", f"bench-{name}-{r}", *sets(overrides)],
                                        {**env, "NSYNC_BENCH_RUNS_DIR": str(runs_dir)}, work / "marks.jsonl"))
            metrics[name] = _result_metrics(runs_dir)
    result: dict[str, Any] = {"style": STYLE, "method": "ti", "seed": seed, "overrides": budget, "variants": {}}
    for name, overrides in variants.items():
        phases = {k: statistics.median(r[k] for r in runs[name]) for k in runs[name][0]
                  if all(k in r for r in runs[name])}
        result["variants"][name] = {"overrides": overrides, "phases_s": phases, "metrics": metrics[name]}
    today, new = result["variants"]["today"], result["variants"]["new"]
    result["ratio"] = today["phases_s"]["total"] / new["phases_s"]["total"]
    result["metric_delta"] = {k: new["metrics"][k] - today["metrics"][k] for k in today["metrics"]}
    return result


def bench_toy(*, repeats: int = 1, seed: int = SEED, sections: tuple[str, ...] = ("generation", "seed"),
              workers: int | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Both measurements, the machine's load before and after, and the targets; ``overrides`` apply to both
    variants (the reported ratios are then not the toy budget's)."""
    from nsync_bench.config.recipes import resolve_config
    from nsync_bench.models.cpu import native_bf16, usable_cores

    results: dict[str, Any] = {"load": [load_note()], "cores": usable_cores(), "native_bf16": native_bf16(),
                               "legacy_overrides": LEGACY, "targets": TARGETS, "repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="nsync-bench-toy-") as tmp:
        work = Path(tmp)
        if "generation" in sections:
            from nsync_bench.perf.toy_generation import bench_generation

            extra = list(overrides or [])
            legacy = resolve_config(style=STYLE, method="ldm", seed=seed, profile="toy", overrides=[*LEGACY, *extra])
            new = resolve_config(style=STYLE, method="ldm", seed=seed, profile="toy", overrides=extra)
            results["generation"] = bench_generation(legacy, new, work / "generation", repeats=repeats,
                                                     workers=workers or usable_cores())
        if "seed" in sections:
            results["seed"] = bench_seed(work / "seed", seed=seed, repeats=repeats, overrides=overrides)
    results["load"].append(load_note())
    return results
