"""``nsync-bench sweep --dry-run``: what a sweep would start, resume, retry or skip, and what it costs.

Nothing is trained, rendered or logged. Each task's status comes from the same places the sweep
reads: ``result.json`` in its run folder or a finished MLflow run with its key (skip), the sweep
state of the last attempt (retry), a checkpoint in its run folder (resume), else start.

The estimate is device time, not wall time (``--max-parallel`` divides wall time, not GPU-hours):

* training: remaining steps x the step time of the run's method at its batch size;
* generation: evaluation images x seconds per image at the run's sampling steps and CFG; the final
  evaluation scores every test caption (``eval.max_prompts``), each learning-curve evaluation still ahead
  (``eval.at_steps``) the declared subset (``eval.curve_prompts``);
* scoring: the same images x extractors / extractor images per second;
* preparation, once per style: NSYNC's negative set (one image per training image).

Step times come from the GPU check's JSON (``nsync-bench bench --profile sd15-arch --device cuda
--json > gpu.json``; ``--step-time gpu.json``) or a number (seconds per TI step at batch 4), from
which the other methods' figures are derived with the documented ratios below. Sampling is not a
fraction of a training step (a training step's backward, optimizer and fp32 parts have no counterpart
in fp16 inference), so without a measurement it takes a nominal GPU figure. Derived figures are marked.
docs/scale.md's example of this output is checked against this code by the tests.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nsync_bench import paths
from nsync_bench.config.methods import METHOD_INFO
from nsync_bench.errors import ConfigError
from nsync_bench.metrics.registry import extractor_kinds
from nsync_bench.pipeline.readiness import NOMINAL
from nsync_bench.sweep.matrix import RETRY_STATUSES, SweepOptions, SweepSpec, Task, expand, read_state, state_path

log = logging.getLogger(__name__)

REFERENCE_BATCH = 4
# Seconds per evaluation image at 50 sampling steps with CFG when no GPU check measured it: nominal for SD 1.5/2
# at 512 px in fp16 on one H100-class GPU (pipeline.readiness.NOMINAL); without CFG a step is half the samples.
NOMINAL_IMAGE_S = NOMINAL["sd-image-50-steps"]["gpu"]
NOMINAL_IMAGE_STEPS = 50
# Extractor images/s when no measurement is given: a conservative GPU figure for CLIP ViT-L/14@336
# (the slowest extractor; measure yours with the GPU check).
NOMINAL_EXTRACTOR_IMAGES_PER_S = 50.0
# Image counts assumed for a style whose data is not on this machine yet (monet2photo: ~1072/121).
ASSUMED_TRAIN_IMAGES = 1000
ASSUMED_TEST_IMAGES = 100


def ratios_to_ti() -> dict[str, float]:
    """Step time of each method at equal batch relative to TI (`nsync-bench bench --only training`, docs/scale.md),
    from each method's descriptor (nsync_bench.config.methods); a method without one counts as TI."""
    return {info.name: info.cost_vs_ti for info in METHOD_INFO.values() if info.cost_vs_ti is not None}


@dataclass
class StepTimes:
    """Measured or given timings; ``derived`` names the figures computed rather than measured."""

    ti_step_s: float
    ti_batch: int = REFERENCE_BATCH
    method_steps: dict[str, tuple[float, int]] = field(default_factory=dict)  # method: (seconds, batch)
    generation_images_per_s: float | None = None
    generation_steps: int | None = None  # the sampling steps the generation rate was measured at
    extractor_images_per_s: dict[str, float] = field(default_factory=dict)
    source: str = "--step-time"
    derived: list[str] = field(default_factory=list)

    def step_seconds(self, method: str, batch: int) -> float:
        """Seconds per optimizer step of ``method`` at ``batch`` (linear in batch: compute-bound)."""
        if method in self.method_steps:
            seconds, measured_batch = self.method_steps[method]
            return seconds * batch / measured_batch
        ratio = ratios_to_ti().get(method, 1.0)
        return self.ti_step_s * ratio * batch / self.ti_batch

    def image_seconds(self, steps: int, guidance: float) -> float:
        """Seconds per generated image at ``steps`` sampling steps (measured, else :data:`NOMINAL_IMAGE_S`)."""
        if self.generation_images_per_s and self.generation_steps:
            return steps / self.generation_steps / self.generation_images_per_s
        return NOMINAL_IMAGE_S * steps / NOMINAL_IMAGE_STEPS * (1.0 if guidance > 1 else 0.5)

    def scoring_seconds(self, images: int, kinds: list[str]) -> float:
        rates = [self.extractor_images_per_s.get(k, NOMINAL_EXTRACTOR_IMAGES_PER_S) for k in kinds]
        return sum(images / rate for rate in rates)


def parse_step_time(text: str) -> StepTimes:
    """``--step-time``: seconds per TI step at batch 4, or the path of the GPU check's JSON."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not 0 < seconds < float("inf"):  # nan and inf too: an estimate from them means nothing
            raise ConfigError(f"--step-time {text!r} must be a positive, finite number of seconds (a TI step at "
                              "batch 4).")
        return StepTimes(seconds, derived=["other methods (docs/scale.md ratios)",
                                           f"generation (nominal {NOMINAL_IMAGE_S} s per image at 50 steps)",
                                           "scoring (nominal)"])
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(f"--step-time {text!r} is neither a number of seconds nor a JSON file. Fix: pass e.g. "
                          "--step-time 0.35, or the output of `nsync-bench bench --profile sd15-arch --device cuda "
                          "--json > gpu.json`.")
    try:
        return step_times_from_json(json.loads(path.read_text()), str(path))
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"--step-time {text!r}: not the JSON of `nsync-bench bench --json` ({err}).") from None


def step_times_from_json(data: dict[str, Any], source: str) -> StepTimes:
    """Timings from ``nsync-bench bench --json`` (the GPU check or the CPU benchmark)."""
    training = data["training"]
    methods = training["methods"]
    # Variants the GPU check could not run carry {"error": ...}: their ratio then comes from docs/scale.md.
    rows = {name: row for name, row in methods.items() if name in ratios_to_ti() and "median_step_s" in row}
    if "ti" not in rows:
        raise KeyError("training.methods.ti")
    measured = {name: (float(r["median_step_s"]), int(r["batch_size"])) for name, r in rows.items()}
    times = StepTimes(*measured["ti"], method_steps=measured, source=source)
    generation = training.get("generation") or {}
    if generation.get("images_per_s"):
        times.generation_images_per_s = float(generation["images_per_s"])
        times.generation_steps = int(generation["num_inference_steps"])
    else:
        times.derived.append(f"generation (nominal {NOMINAL_IMAGE_S} s per image at 50 steps)")
    extractors = (data.get("extractors") or data.get("reference_extractors") or {}).get("extractors", {})
    times.extractor_images_per_s = {kind: float(row["images_per_s"]) for kind, row in extractors.items()}
    if not times.extractor_images_per_s:
        times.derived.append("scoring (nominal)")
    return times


@dataclass
class PlannedRun:
    task: Task
    status: str  # start | resume | retry | skip
    remaining_steps: int
    train_s: float = 0.0
    generate_s: float = 0.0
    score_s: float = 0.0

    @property
    def seconds(self) -> float:
        return self.train_s + self.generate_s + self.score_s


@dataclass
class SweepPlan:
    runs: list[PlannedRun]
    prepare_s: dict[str, float]  # style: seconds of its negative set (only if one is rendered)
    image_counts: dict[str, tuple[int, int, bool]]  # style: (train, test, assumed)
    times: StepTimes | None

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self.runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        return counts

    def totals_hours(self) -> dict[str, float]:
        todo = [r for r in self.runs if r.status != "skip"]
        parts = {"training": sum(r.train_s for r in todo), "generation": sum(r.generate_s for r in todo),
                 "scoring": sum(r.score_s for r in todo), "negative sets": sum(self.prepare_s.values())}
        hours = {name: seconds / 3600 for name, seconds in parts.items()}
        hours["total"] = sum(hours.values())
        return hours


def _image_counts(style: str, data_root: Path) -> tuple[int, int, bool]:
    from nsync_bench.data.styles import get_style, list_images

    info = get_style(style)
    style_dir = data_root / style
    try:
        train, test = len(list_images(style_dir, info.train_split)), len(list_images(style_dir, info.test_split))
    except Exception:  # no data yet is the usual case before a sweep
        train = test = 0
    if train and test:
        return train, test, False
    return ASSUMED_TRAIN_IMAGES, ASSUMED_TEST_IMAGES, True


def _checkpoint_step(run_dir: Path) -> int:
    from nsync_bench.training.checkpoint import latest_checkpoint

    path = latest_checkpoint(run_dir / "checkpoints")
    if path is None:
        return 0
    try:
        return int(path.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _finished_in_mlflow(options: SweepOptions) -> bool:
    """Whether to ask MLflow: a server, or an SQLite store that exists (a dry run creates nothing)."""
    uri = paths.tracking_uri(options.tracking_uri)
    db = paths.sqlite_file(uri)
    if db is not None:
        return db.is_file()
    return not uri.startswith("file:") or Path(uri.removeprefix("file:")).exists()


def _status(task: Task, options: SweepOptions, experiment: str, state: dict[str, dict],
            ask_mlflow: bool) -> tuple[str, int]:
    from nsync_bench.pipeline.results import check_result
    from nsync_bench.tracking.tracker import find_finished_run

    run_dir = Path(task.run_dir)
    if check_result(run_dir, task.run_key)[0] is not None:  # a complete, verified result (read only)
        return "skip", 0
    if ask_mlflow and find_finished_run(paths.tracking_uri(options.tracking_uri), experiment, task.run_key):
        return "skip", 0
    done = _checkpoint_step(run_dir)
    max_steps = int(task.config["train"]["max_steps"])
    if state.get(task.run_key, {}).get("status") in RETRY_STATUSES:
        return "retry", max_steps - done
    return ("resume" if done else "start"), max_steps - done


def plan_sweep(spec: SweepSpec, options: SweepOptions, times: StepTimes | None, *,
               retry_failed: bool = False) -> SweepPlan:
    """Every task of the sweep with its status and (given ``times``) its estimated device seconds."""
    from nsync_bench.config.methods import method_info
    from nsync_bench.sweep.matrix import select_tasks

    tasks = select_tasks(expand(spec, options), spec, options, retry_failed)
    state = read_state(state_path(spec, options))
    ask_mlflow = _finished_in_mlflow(options)
    data_root = paths.data_root(options.data_root)
    counts = {style: _image_counts(style, data_root) for style in dict.fromkeys(t.style for t in tasks)}
    runs: list[PlannedRun] = []
    negatives: dict[str, float] = {}
    for task in tasks:
        status, remaining = _status(task, options, spec.experiment_name(), state, ask_mlflow)
        run = PlannedRun(task, status, remaining)
        config = task.config
        if times is not None and status != "skip":
            train_images, test_images, _ = counts[task.style]
            evaluation = config["eval"]
            trains = method_info(task.method).trains  # ldm: evaluation only
            if not trains:
                run.remaining_steps = remaining = 0
            run.train_s = remaining * times.step_seconds(task.method, int(config["train"]["batch_size"]))
            images = evaluated_images(config, test_images, remaining if trains else 0)
            run.generate_s = images * times.image_seconds(evaluation["num_inference_steps"],
                                                          evaluation["guidance_scale"])
            kinds = extractor_kinds(config["metrics"]["names"])
            run.score_s = times.scoring_seconds(images, kinds)
            if method_info(task.method).needs_negatives and not config["nsync"]["negatives_dir"]:
                neg = config["negatives"]
                negatives[task.style] = train_images * times.image_seconds(neg["num_inference_steps"],
                                                                           neg["guidance_scale"])
        runs.append(run)
    return SweepPlan(runs, negatives, counts, times)


def evaluated_images(config: dict[str, Any], test_images: int, remaining_steps: int) -> int:
    """Images a run still generates and scores: the final evaluation's, plus each learning-curve evaluation
    ahead of it on the curve's prompt subset (pipeline.learning_curve.curve_prompt_count)."""
    evaluation, max_steps = config["eval"], int(config["train"]["max_steps"])
    final = min(test_images, evaluation["max_prompts"] or test_images)
    subset = evaluation.get("curve_prompts")
    curve = final if subset is None else min(final, subset)
    done = max_steps - remaining_steps
    ahead = sum(done < step < max_steps for step in (evaluation.get("at_steps") or [])) if remaining_steps else 0
    return final + ahead * curve
