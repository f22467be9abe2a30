"""Learning curves: evaluate and score a run at the optimizer steps in ``eval.at_steps``.

The released code saves the embedding every 1000 steps; scoring those checkpoints shows whether
a method is still improving, has converged or is overfitting at the step the comparison uses.
At each listed step (below ``train.max_steps``; the final evaluation covers the end) the trainer's
callback evaluates a *deep copy* of the method — generation casts and swaps modules (e.g. the text
encoder to half precision on a GPU, TI's learned row into the matrix) and none of that may reach
the model that keeps training — with exactly the code of the final evaluation. Results:

* ``eval/steps/<step>/`` in the run folder: images, manifest, per-image scores (artifacts too);
* MLflow metrics ``curve/<metric>`` at that step (the final evaluation adds the point at
  ``max_steps``); ``metrics/<metric>`` stays the end-of-training value the report compares;
* ``eval/curve.jsonl``: one line per evaluated step. A resumed run reads it and never repeats a
  step; a step whose checkpoint was saved before its evaluation ran is evaluated on resume.

``eval.curve_prompts = N`` (the real profiles declare 50) evaluates the curve on the first N evaluation
prompts only: the same prompts, seeds and initial latents as the final evaluation's first N images, so the
curve's last point is those N final images scored again (no new images), comparable with the others.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from nsync_bench.io import atomic_write_text
from nsync_bench.progress import Progress
from nsync_bench.tracking.tracker import NullTracker, Tracker

if TYPE_CHECKING:
    from nsync_bench.config.run_config import RunConfig
    from nsync_bench.data.styles import StyleData
    from nsync_bench.methods.base import Method

log = logging.getLogger(__name__)

CURVE_FILE = "curve.jsonl"
CURVE_PREFIX = "curve/"


def curve_prompt_count(config: RunConfig) -> int | None:
    """How many evaluation prompts a learning-curve point uses (None: all of the final evaluation's)."""
    subset, final = config.eval.curve_prompts, config.eval.max_prompts
    if subset is None:
        return None
    return subset if final is None else min(subset, final)


def curve_config(config: RunConfig) -> RunConfig:
    """The config a learning-curve evaluation runs with: the final evaluation's, on the declared prompt subset."""
    count = curve_prompt_count(config)
    if count is None or count == config.eval.max_prompts:
        return config
    copy = config.model_copy(deep=True)
    copy.eval.max_prompts = count
    return copy


def evaluation_steps(config: RunConfig) -> list[int]:
    """The intermediate steps to evaluate at (those at or past ``max_steps`` are the final evaluation)."""
    return [s for s in config.eval.at_steps if s < config.train.max_steps]


def read_curve(path: Path) -> dict[int, dict[str, float]]:
    """``{step: metrics}`` from ``curve.jsonl`` (empty when absent). A line that does not parse (a file
    damaged outside the project: it is written whole) is skipped with a warning: that step is evaluated again."""
    if not path.is_file():
        return {}
    curve: dict[int, dict[str, float]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        try:
            row = json.loads(line) if line.strip() else None
            if row is not None:
                curve[int(row["step"])] = dict(row["metrics"])
        except (ValueError, KeyError, TypeError) as err:
            log.warning("%s line %d is damaged (%s); that evaluation is run again", path, number, err)
    return curve


class _StepTracker(NullTracker):
    """Routes one intermediate evaluation's logging: ``metrics/x`` -> ``curve/x`` at the step, artifacts
    under ``eval/steps/<step>/``; everything else (params, tags, inputs, models, finishing) is the final
    evaluation's, so it is inherited from :class:`NullTracker` as a no-op."""

    def __init__(self, tracker: Tracker, step: int) -> None:
        self.tracker, self.step = tracker, step

    @property
    def run_id(self) -> str | None:  # type: ignore[override]  # a read-only view of the wrapped tracker's id
        return self.tracker.run_id

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.tracker.log_metrics(curve_metrics(metrics), step=self.step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        sub = (artifact_path or "").removeprefix("eval").strip("/")
        self.tracker.log_artifact(path, f"eval/steps/{self.step}" + (f"/{sub}" if sub else ""))

    def flush(self) -> None:
        self.tracker.flush()


def curve_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """``metrics/fid`` -> ``curve/fid`` (the scores only; std and counts stay out of the curve)."""
    return {CURVE_PREFIX + k.removeprefix("metrics/"): v for k, v in metrics.items()
            if k.startswith("metrics/") and not k.endswith("_std")}


class CurveEvaluator:
    """A trainer callback: at each step of ``eval.at_steps`` not yet evaluated, evaluate a copy of the method."""

    def __init__(self, config: RunConfig, method: Method, data: StyleData, run_dir: Path,
                 tracker: Tracker, progress: Progress, weights_dir: Path | None = None) -> None:
        self.config, self.method, self.data = config, method, data
        self.eval_dir = run_dir / "eval"
        self.tracker, self.progress, self.weights_dir = tracker, progress, weights_dir
        self.steps = set(evaluation_steps(config))
        self.done = read_curve(self.eval_dir / CURVE_FILE)  # earlier evaluations survive a resume
        ignored = [s for s in config.eval.at_steps if s >= config.train.max_steps]
        if ignored:
            log.info("eval.at_steps %s: at or past train.max_steps = %d, covered by the final evaluation", ignored,
                     config.train.max_steps)

    def __call__(self, step: int) -> None:
        if step in self.steps and step not in self.done:
            self.evaluate(step)

    def evaluate(self, step: int) -> dict[str, float]:
        import torch

        from nsync_bench.models.finite import NonFiniteSamplesError
        from nsync_bench.pipeline.evaluation import evaluate

        log.info("learning curve: evaluating at step %d", step)
        snapshot = copy.deepcopy(self.method)  # evaluation must not touch the model that keeps training
        try:
            with torch.no_grad():
                metrics = evaluate(curve_config(self.config), snapshot, self.data,
                                   self.eval_dir / "steps" / f"{step:06d}", _StepTracker(self.tracker, step),
                                   self.progress, self.weights_dir)
        except NonFiniteSamplesError as err:
            raise err.at(f"the learning-curve evaluation at step {step}", "The run is FAILED: no result was "
                         "written, and a rerun recomputes it from its last checkpoint.") from None
        finally:
            del snapshot
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self._record(step, metrics)
        return metrics

    def record_final(self, step: int, metrics: dict[str, float]) -> None:
        """The final evaluation's scores as the curve's last point (logged as ``curve/*`` at ``step``); with a
        prompt subset, the final evaluation's first N images scored on their own."""
        if curve_config(self.config) is not self.config and self.config.metrics.names:
            metrics = self._score_final_subset()
        self.tracker.log_metrics(curve_metrics(metrics), step=step)
        self._record(step, metrics)

    def _score_final_subset(self) -> dict[str, float]:
        from nsync_bench import paths
        from nsync_bench.metrics.scoring import score_image_sets
        from nsync_bench.pipeline.generation import read_manifest

        count = curve_prompt_count(self.config)
        image_dir = self.eval_dir / "images"
        generated = sorted(read_manifest(image_dir), key=lambda g: g.index)[:count]
        real = [img.path for img in self.data.test]
        report = score_image_sets([image_dir / g.file for g in generated], real, self.config.metrics,
                                  weights_dir=self.weights_dir, cache_root=paths.cache_dir() / "features",
                                  progress=self.progress)
        return {f"metrics/{name}": result.value for name, result in report.results.items()}

    def _record(self, step: int, metrics: dict[str, float]) -> None:
        scores = {k.removeprefix("metrics/"): float(v) for k, v in metrics.items() if k.startswith("metrics/")}
        self.done[step] = scores
        lines = [json.dumps({"step": s, "metrics": m}) + "\n" for s, m in sorted(self.done.items())]
        atomic_write_text(self.eval_dir / CURVE_FILE, "".join(lines))  # whole: never a torn last line
        self.tracker.flush()


__all__ = ["CURVE_FILE", "CURVE_PREFIX", "CurveEvaluator", "curve_config", "curve_metrics", "curve_prompt_count",
           "evaluation_steps", "read_curve"]
