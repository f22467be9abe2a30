"""One benchmark run end to end: data, model, training, adapter, evaluation images, MLflow.

A run lives in ``<runs_dir>/<experiment>/<style>/<method>/seed<seed>-<run key>/``:

    config.json        resolved config, run key, provenance
    checkpoints/       rolling checkpoints (removed when the run finishes)
    adapter/           the final adapter in a format diffusers loads
    eval/              evaluation images, manifest.jsonl, grid.png
    mlflow_run_id      the MLflow run this directory logs to (reused on resume)
    result.json        written last, atomically: a result that verifies means "finished"
                       (nsync_bench.pipeline.results; docs/running.md, "After a crash")
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nsync_bench import paths
from nsync_bench.config.recipes import resolve_config
from nsync_bench.config.run_config import RunConfig
from nsync_bench.data.run_key import run_key
from nsync_bench.errors import NsyncBenchError
from nsync_bench.io import atomic_write_json, atomic_write_text, disk_full_error, read_json
from nsync_bench.pipeline.results import RESULT_FILE, finished_record, reconcile, save_adapter, write_result
from nsync_bench.pipeline.run_lock import RunBusyError, run_lock
from nsync_bench.progress import NullProgress, Progress
from nsync_bench.tracking import provenance, schema
from nsync_bench.tracking.remote import open_tracker
from nsync_bench.tracking.tracker import NullTracker, Tracker

if TYPE_CHECKING:  # types only: importing these pulls in torch, which the CLI loads only when a run starts
    from nsync_bench.data.styles import StyleData
    from nsync_bench.methods.base import Method
    from nsync_bench.training.trainer import Trainer

log = logging.getLogger(__name__)

LOG_FILE = "run.log"


@dataclass
class RunResult:
    run_key: str
    run_dir: Path
    mlflow_run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    adapter: str = ""
    skipped: bool = False  # True when an earlier run with the same key had finished


@dataclass
class RunOptions:
    """Where a run reads and writes; none of this enters the run key."""

    runs_dir: Path | None = None
    data_root: Path | None = None
    tracking_uri: str | None = None
    experiment: str | None = None  # default: nsync-bench-<profile>
    weights_dir: Path | None = None  # metric weights (default: NSYNC_BENCH_WEIGHTS_DIR or the cache)
    track: bool = True
    system_metrics: bool | None = None  # MLflow system metrics; None: on for real profiles, off for smoke
    resume: str = "auto"  # auto: skip if finished, else continue from a checkpoint; never: start over
    progress: Progress = field(default_factory=NullProgress)
    callbacks: list[Callable[[int], None]] = field(default_factory=list)
    lock_wait_s: float = 0.0  # how long to wait for a key held elsewhere (a sweep's Slurm jobs: one stale window)


def data_identity(config: RunConfig, options: RunOptions) -> dict[str, Any]:
    """The content digests of what a run consumes (nsync_bench.data.identity); part of its key."""
    from nsync_bench.data.identity import run_data_identity

    return run_data_identity(config, paths.data_root(options.data_root))


def full_run_key(config: RunConfig, options: RunOptions) -> str:
    """The run key: the resolved config plus the data identity (what skip-if-finished matches)."""
    return run_key(config, data_identity(config, options))


def run_directory(config: RunConfig, options: RunOptions, key: str | None = None) -> Path:
    spec = config.run
    experiment = experiment_name(config, options)
    leaf = f"seed{spec.seed}-{key or full_run_key(config, options)}"
    return paths.runs_dir(options.runs_dir) / experiment / spec.style / spec.method / leaf


def run(
    *,
    style: str,
    method: str,
    seed: int = 0,
    profile: str = "smoke",
    protocol: str | None = None,
    overrides: list[str] | None = None,
    options: RunOptions | None = None,
) -> RunResult:
    """Resolve the config and execute the run (or return the finished one with the same key)."""
    config = resolve_config(style=style, method=method, seed=seed, profile=profile, protocol=protocol,
                            overrides=overrides)
    return execute(config, options or RunOptions())


def execute(config: RunConfig, options: RunOptions) -> RunResult:
    world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world_size > 1:
        raise NsyncBenchError(
            f"this run was started by a multi-process launcher (WORLD_SIZE={world_size}); data-parallel "
            "training of one run is not supported (NSYNC's rule needs all-reduced branch gradients). Run it as "
            "one process per GPU instead: `nsync-bench sweep ... --devices 0,1,...` or a Slurm array."
        )
    paths.check_name(experiment_name(config, options), "experiment", "--experiment")  # a path component
    check_locations(options)
    # The style's files, resolved once for the whole run and passed down (identity, checks, training,
    # evaluation). A missing dataset is the user's to fix: say so before any run folder or MLflow run exists.
    from nsync_bench.data.identity import run_data_identity
    from nsync_bench.data.styles import resolve_style_data

    data = resolve_style_data(config.run.style, paths.data_root(options.data_root))
    identity = run_data_identity(config, data)
    key = run_key(config, identity)
    run_dir = run_directory(config, options, key)
    with run_lock(run_dir, key, options.lock_wait_s):
        finished = finished_result(config, options, key) if options.resume != "never" else None
        if finished is not None:
            return finished
        from nsync_bench.pipeline.preflight import check_before_training  # seconds, not after hours of training

        check_before_training(config, data, options.weights_dir, options.progress)
        if options.resume == "never" and run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_config(run_dir, config, key, identity)
        return _execute_locked(config, options, key, run_dir, identity, data)


def check_locations(options: RunOptions) -> None:
    """Unusable folders or stores are teaching errors before anything is written."""
    from nsync_bench.paths import check_tracking_uri, usable_dir

    usable_dir(paths.runs_dir(options.runs_dir), "the runs folder", "Pass another --runs-dir (NSYNC_BENCH_RUNS_DIR).")
    usable_dir(paths.data_root(options.data_root), "the data root",
               "Pass another --data-root (NSYNC_BENCH_DATA_ROOT).")
    if options.track:
        check_tracking_uri(paths.tracking_uri(options.tracking_uri))


def _execute_locked(config: RunConfig, options: RunOptions, key: str, run_dir: Path,
                    identity: dict[str, Any], data: StyleData) -> RunResult:
    """Train, evaluate and track under the lock; MLflow's status is FAILED unless everything finished."""
    handler = _log_to_file(run_dir / LOG_FILE)
    try:
        tracker = _start_tracker(config, key, run_dir, options, identity)
        status = "FAILED"
        try:
            result = _train_and_evaluate(config, key, run_dir, tracker, options, identity, data)
            status = "FINISHED"
            return result
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        except NsyncBenchError as err:  # a teaching error: its message is the whole story, and the
            # caller shows it; only run.log gets it here (no traceback, no second copy on the console)
            handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "run %s failed: %s", (key, err), None))
            raise
        except BaseException as err:
            full = disk_full_error(err, run_dir)  # a plain write (an image, an artifact copy) hit a full disk
            if full is None:
                log.exception("run %s failed", key)
                raise
            handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "run %s failed: %s", (key, full), None))
            raise full from None
        finally:
            handler.flush()
            tracker.log_artifact(run_dir / LOG_FILE)
            tracker.finish(status)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def finished_result(config: RunConfig, options: RunOptions, key: str | None = None) -> RunResult | None:
    """The result of a finished run with this config's key: on local disk, or else in MLflow."""
    key = key or full_run_key(config, options)
    run_dir = run_directory(config, options, key)
    result, damaged = finished_record(run_dir, key)  # verified; a torn or incomplete one is set aside
    if result is not None:
        log.info("run %s already finished in %s; not recomputed", key, run_dir)
        if options.track:  # a crash after result.json may have left its MLflow run open
            reconcile(result, run_dir, paths.tracking_uri(options.tracking_uri))
        return RunResult(key, run_dir, result.get("mlflow_run_id"), result["metrics"], result["adapter"],
                         skipped=True)
    if options.track and not damaged:  # a damaged folder is recomputed, not vouched for by MLflow
        from nsync_bench.tracking.remote import find_finished_run

        found = find_finished_run(paths.tracking_uri(options.tracking_uri), experiment_name(config, options), key)
        if found is not None:
            log.info("run %s already finished in MLflow (run %s); not recomputed", key, found.info.run_id)
            metrics = {k: v for k, v in found.data.metrics.items() if k.startswith(("metrics/", "eval/"))}
            return RunResult(key, run_dir, found.info.run_id, metrics, "", skipped=True)
    return None


def experiment_name(config: RunConfig, options: RunOptions) -> str:
    return options.experiment or paths.default_experiment(config.run.profile)


def _log_to_file(path: Path) -> logging.Handler:
    """Everything logged during the run also goes to ``run.log`` in its directory (sweeps point at it)."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    if logging.getLogger("nsync_bench").getEffectiveLevel() > logging.INFO:
        logging.getLogger("nsync_bench").setLevel(logging.INFO)
    return handler


def _write_config(run_dir: Path, config: RunConfig, key: str, identity: dict[str, Any]) -> None:
    record = {"run_key": key, "config": config.model_dump(mode="json"), "data_identity": identity,
              "git_sha": provenance.git_sha(), "libraries": provenance.library_versions()}
    atomic_write_json(run_dir / "config.json", record, indent=2)


def _start_tracker(config: RunConfig, key: str, run_dir: Path, options: RunOptions,
                   identity: dict[str, Any]) -> Tracker:
    if not options.track:
        return NullTracker()
    spec = config.run
    id_file = run_dir / "mlflow_run_id"
    previous = id_file.read_text().strip() if id_file.is_file() else None
    if previous is not None and not (len(previous) == 32 and previous.isalnum()):  # torn: start a new MLflow run
        log.warning("ignoring the unreadable MLflow run id %r in %s", previous[:40], id_file)
        previous = None
    from nsync_bench.tracking import mlflow_ui

    tags = {**schema.run_tags(spec, key), "git_sha": provenance.git_sha(), "run_dir": str(run_dir),
            **mlflow_ui.source_tags(provenance.git_sha(), mlflow_ui.reproduce_command(config, options.experiment))}
    tracker = open_tracker(  # in this process, or in the MLflow helper `nsync-bench run` started
        paths.tracking_uri(options.tracking_uri),
        experiment_name(config, options),
        run_name=f"{spec.style}/{spec.method}/seed{spec.seed}",
        tags=tags,
        run_id=previous,
        system_metrics=mlflow_ui.system_metrics_enabled(spec.profile, options.system_metrics),
    )
    atomic_write_text(id_file, tracker.run_id or "")
    from nsync_bench.data.identity import identity_digest, identity_params

    tracker.log_params({**config.flat(), **identity_params(identity)})
    tracker.set_tags({"data_digest": identity_digest(identity)})
    return tracker


@dataclass
class Training:
    """Everything a run trains with, assembled from a resolved config."""

    config: RunConfig
    data: StyleData  # the style's files as resolved once for the run
    method: Method
    trainer: Trainer | None  # None for a method that trains nothing (ldm)
    negatives: list[Path] | None = None  # NSYNC methods: the negative images paired with the train images


def build_training(config: RunConfig, *, checkpoint_dir: Path, style_data: StyleData | None = None,
                   data_root: Path | None = None, tracker: Tracker | None = None, progress: Progress | None = None,
                   callbacks: list[Callable[[int], None]] | None = None) -> Training:
    """Data, components, method and trainer for ``config`` (no training happens yet).

    ``style_data``: the run's resolved style files (a run resolves them once and has already checked them:
    pipeline/preflight.check_before_training); without it they are resolved under ``data_root``, unchecked
    (the benchmarks' and tests' way in).
    """

    from nsync_bench.config.methods import method_info
    from nsync_bench.data.styles import require_captions, resolve_style_data
    from nsync_bench.methods import method_class
    from nsync_bench.models.loading import components_for
    from nsync_bench.training.batches import ImageSet, PositiveBatches
    from nsync_bench.training.trainer import Trainer

    spec = config.run
    data = style_data or resolve_style_data(spec.style, paths.data_root(data_root))
    style, train_images = data.info, data.train
    captions = require_captions(train_images) if config.prompts.mode == "caption" else [""] * len(train_images)

    device, precision, components = components_for(config)
    cls, info = method_class(spec.method), method_info(spec.method)
    negatives = None
    if info.needs_negatives:  # rendered by the pristine base model, before the method changes it
        from nsync_bench.data.negatives import ensure_negative_set

        negative_paths = ensure_negative_set(config, style, train_images, captions, components,
                                             data.data_root, progress)
        negatives = ImageSet(negative_paths, config.model.resolution, config.data)
    method = cls(config, components, style, device, precision)
    if not info.trains:  # ldm: nothing to train, so no batches, latents or trainer
        return Training(config, data, method, None)

    images = ImageSet([img.path for img in train_images], config.model.resolution, config.data)
    if config.train.cache_latents:
        from nsync_bench.training.latents import LatentCache

        latent_dir = paths.cache_dir() / "latents"
        for image_set in (images, negatives):
            if image_set is not None:
                image_set.latent_cache = LatentCache(components, image_set, device, latent_dir)
    batches = PositiveBatches(images, captions, spec.seed, config.train.batch_size)
    if negatives is not None:
        method.attach_negatives(negatives, batches)
    trainer = Trainer(config, method, batches, checkpoint_dir, tracker, progress, callbacks)
    return Training(config, data, method, trainer, negative_paths if negatives is not None else None)


def _train_and_evaluate(config: RunConfig, key: str, run_dir: Path, tracker: Tracker,
                        options: RunOptions, identity: dict[str, Any], data: StyleData) -> RunResult:
    import torch

    from nsync_bench.models.finite import NonFiniteSamplesError
    from nsync_bench.pipeline.evaluation import evaluate

    training = build_training(config, style_data=data, checkpoint_dir=run_dir / "checkpoints",
                              tracker=tracker, progress=options.progress, callbacks=options.callbacks)
    method, trainer = training.method, training.trainer
    tracker.set_tags({"hardware": json.dumps(provenance.hardware(str(method.device))),
                      "libraries": json.dumps(provenance.library_versions()),
                      "model_source": method.components.source, **schema.kind_tag(schema.RUN_KIND)})
    from nsync_bench.data.identity import dataset_inputs, files_identity

    rendered = None
    if training.negatives is not None:  # a rendered set's digest is known only now
        rendered = files_identity("negatives", training.negatives, str(training.negatives[0].parent))
        tracker.set_tags({"data_identity.negatives.rendered": rendered["images"],
                          "data_identity.negatives.source": rendered["source"]})
    inputs = dataset_inputs(identity, rendered)  # the Dataset column of MLflow's runs table
    tracker.log_inputs(inputs)
    curve = None
    if trainer is None:
        log.info("method %s trains nothing; evaluating the base model", config.run.method)
    else:
        if config.eval.at_steps:  # learning curve: evaluate at these steps too (nsync_bench.pipeline.learning_curve)
            from nsync_bench.pipeline.learning_curve import CurveEvaluator

            curve = CurveEvaluator(config, method, training.data, run_dir, tracker,
                                   options.progress, options.weights_dir)
            trainer.callbacks.append(curve)
        if options.resume != "never":
            trainer.resume()
        if curve is not None:
            curve(trainer.step)  # a checkpoint saved at an evaluation step before its evaluation ran
        trainer.fit()

    adapter = save_adapter(method, run_dir / "adapter")  # whole, with its checksums
    tracker.log_artifact(run_dir / "adapter", "adapter")
    tracker.log_artifact(run_dir / "config.json")
    step = trainer.step if trainer else 0
    try:
        with torch.no_grad():
            metrics = evaluate(config, method, training.data, run_dir / "eval", tracker,
                               options.progress, options.weights_dir)
    except NonFiniteSamplesError as err:
        raise err.at(f"the evaluation after step {step}", "The run is FAILED: no result was written, and a rerun "
                     "recomputes it.") from None

    if curve is not None:
        assert trainer is not None  # a learning curve is set up only for a method that trains
        curve.record_final(trainer.step, metrics)

    from nsync_bench.export.model_card import write_run_card

    run_record = read_json(run_dir / "config.json", "the run record", "Run the same command with --restart.")
    tracker.log_artifact(write_run_card(run_dir / "adapter", run_record, metrics), "adapter")  # what the adapter is
    spec = config.run  # the adapter as a logged model: MLflow's Models tab shows its metrics as columns
    tracker.log_model(f"{spec.style}-{spec.method}-seed{spec.seed}", metrics, inputs.get("evaluation"),
                      {schema.RUN_KEY: key, "method": spec.method, "style": spec.style, "artifact_path": "adapter"})
    result = RunResult(key, run_dir, tracker.run_id, metrics, str(adapter.relative_to(run_dir)))
    write_result(run_dir, {"run_key": key, "mlflow_run_id": tracker.run_id, "metrics": metrics,
                           "adapter": result.adapter, "steps": step})  # finished on disk from here
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return result  # the MLflow run is closed FINISHED last (_execute_locked)


__all__ = ["RESULT_FILE", "RunBusyError", "RunOptions", "RunResult", "Training", "build_training", "check_locations",
           "data_identity", "execute", "full_run_key", "run", "run_directory"]
