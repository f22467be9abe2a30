"""Sweeps: the styles x methods x seeds matrix as idempotent, resumable runs.

A sweep expands into tasks, one per run key. Prerequisites that every run of a style shares —
its data and captions, NSYNC's negative set, the real test set's features — are prepared once
per style before fan-out. Each task then runs under a per-key lock (nsync_bench.pipeline.locking) and
skips itself when a finished run with its key exists (on disk or in MLflow); an interrupted run
resumes from its checkpoint. Executors (nsync_bench.sweep.executors) decide where tasks run.

Sweep files live in ``baselines/sweeps/<name>.toml`` with keys ``styles``, ``methods``,
``seeds``, ``profile``, ``protocol``, ``experiment``, ``set`` (a list of overrides) and ``claims``
(the claims file the sweep answers: a name in baselines/claims/ or a path; default
baselines/claims.toml).
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nsync_bench import paths
from nsync_bench.compat import tomllib
from nsync_bench.config.run_config import RunConfig
from nsync_bench.data.run_key import run_key
from nsync_bench.errors import ConfigError, NsyncBenchError, unknown_name
from nsync_bench.io import atomic_write_json
from nsync_bench.paths import shipped_dir
from nsync_bench.sweep.interrupts import SweepInterrupted

log = logging.getLogger(__name__)

STATE_FILE = "sweep-state.json"
RETRY_STATUSES = ("failed", "busy", "killed")  # what --retry-failed reruns


@dataclass
class SweepSpec:
    styles: list[str]
    methods: list[str]
    seeds: list[int]
    profile: str = "smoke"
    protocol: str | None = None
    overrides: list[str] = field(default_factory=list)
    experiment: str | None = None
    description: str = ""
    claims: str | None = None  # the claims file it answers (None: baselines/claims.toml)

    def experiment_name(self) -> str:
        return self.experiment or paths.default_experiment(self.profile)


@dataclass
class SweepOptions:
    """Where tasks read and write (shared by every worker; none of it enters run keys)."""

    runs_dir: str | None = None
    data_root: str | None = None
    tracking_uri: str | None = None
    weights_dir: str | None = None
    lock_wait_s: float = 0.0  # how long a task waits for its run key's lock held elsewhere

    def run_options(self, experiment: str) -> Any:
        from nsync_bench.pipeline.runner import RunOptions

        return RunOptions(
            runs_dir=Path(self.runs_dir) if self.runs_dir else None,
            data_root=Path(self.data_root) if self.data_root else None,
            tracking_uri=self.tracking_uri,
            experiment=experiment,
            weights_dir=Path(self.weights_dir) if self.weights_dir else None,
            lock_wait_s=self.lock_wait_s,
        )


@dataclass
class Task:
    style: str
    method: str
    seed: int
    run_key: str
    run_dir: str
    config: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.style}/{self.method}/seed{self.seed}"


@dataclass
class TaskResult:
    run_key: str
    label: str
    status: str  # finished | skipped | failed | busy | killed
    seconds: float = 0.0
    mlflow_run_id: str | None = None
    log_path: str = ""
    error: str = ""


def sweep_names() -> list[str]:
    return sorted(p.stem for p in (shipped_dir("baselines") / "sweeps").glob("*.toml"))


def load_sweep_file(name_or_path: str) -> SweepSpec:
    """A sweep from ``baselines/sweeps/<name>.toml`` or from a path to a TOML file."""
    path = Path(name_or_path)
    if not path.is_file():
        path = shipped_dir("baselines") / "sweeps" / f"{name_or_path}.toml"
        if not path.is_file():
            raise unknown_name("sweep file", name_or_path, sweep_names(), "Or pass a path to a TOML file.")
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    allowed = {"styles", "methods", "seeds", "profile", "protocol", "experiment", "set", "description", "claims"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"unknown keys {unknown} in sweep file {path}; allowed: {', '.join(sorted(allowed))}.")
    return SweepSpec(styles=_names(data, "styles", path), methods=_names(data, "methods", path),
                     seeds=_seeds(data.get("seeds"), path), profile=data.get("profile", "smoke"),
                     protocol=data.get("protocol"), overrides=_names(data, "set", path, required=False),
                     experiment=data.get("experiment"), description=data.get("description", ""),
                     claims=data.get("claims"))


def _names(data: dict[str, Any], key: str, path: Path, required: bool = True) -> list[str]:
    """A list of strings from a sweep file; a bare string (``styles = "monet"``) is the usual slip."""
    value = data.get(key, None if required else [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        example = '["monet", "vangogh"]' if key != "set" else '["train.max_steps=10"]'
        raise ConfigError(f"{key} = {value!r} in sweep file {path} must be a list of strings, e.g. {key} = {example}.")
    return unique(value)


def _seeds(value: Any, path: Path) -> list[int]:
    """Integers only: TOML's 1.5 or true would otherwise become seed 1."""
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"seeds = {value!r} in sweep file {path} must be a list of integers, e.g. seeds = [0, 1, 2].")
    return unique(value)


def unique(values: list[Any]) -> list[Any]:
    """``values`` without repeats, in first-seen order (``ti,ti`` is one method, not two tasks of one key)."""
    return list(dict.fromkeys(values))


def expand(spec: SweepSpec, options: SweepOptions) -> list[Task]:
    """One task per (style, method, seed), each with its resolved config and run key."""
    from nsync_bench.config.recipes import resolve_config
    from nsync_bench.pipeline.runner import data_identity, run_directory

    if not (spec.styles and spec.methods and spec.seeds):
        raise ConfigError("a sweep needs at least one style, one method and one seed.")
    paths.check_name(spec.experiment_name(), "experiment", "--experiment (or the sweep file's experiment)")
    spec.styles, spec.methods, spec.seeds = unique(spec.styles), unique(spec.methods), unique(spec.seeds)
    run_options = options.run_options(spec.experiment_name())
    tasks = []
    for style in spec.styles:
        for method in spec.methods:
            identity = None
            for seed in spec.seeds:
                config = resolve_config(style=style, method=method, seed=seed, profile=spec.profile,
                                        protocol=spec.protocol, overrides=spec.overrides)
                try:  # the same key `run` computes: config plus data identity (the seed does not change it)
                    identity = identity or data_identity(config, run_options)
                    key = run_key(config, identity)
                except NsyncBenchError as err:  # no data yet: preparing the style reports it as failed
                    log.debug("no data identity for %s yet (%s)", style, err)
                    key = run_key(config)
                tasks.append(Task(style, method, seed, key, str(run_directory(config, run_options, key)),
                                  config.model_dump(mode="json")))
    return tasks


def prepare_style(style: str, configs: list[RunConfig], options: SweepOptions) -> None:
    """Once per style before fan-out: data and captions, the negative set, the real-set features."""
    from nsync_bench.config.methods import method_info
    from nsync_bench.data.negatives import negatives_for_config
    from nsync_bench.data.styles import ensure_style_data, get_style, list_images, require_captions

    data_root = paths.data_root(options.data_root)
    info = get_style(style)
    style_dir = ensure_style_data(style, data_root)
    require_captions(list_images(style_dir, info.train_split))
    test_images = list_images(style_dir, info.test_split)
    require_captions(test_images)
    done: set[str] = set()
    for config in configs:
        if method_info(config.run.method).needs_negatives:
            key = json.dumps([config.model.model_dump(mode="json"), config.negatives.model_dump(mode="json"),
                              config.nsync.negatives_dir])
            if key not in done:
                negatives_for_config(config, data_root)
                done.add(key)
    metric_configs = {json.dumps(c.metrics.model_dump(mode="json")): c.metrics for c in configs if c.metrics.names}
    for metrics in metric_configs.values():
        warm_real_features(metrics, [img.path for img in test_images], options)


def warm_real_features(metrics: Any, real: list[Path], options: SweepOptions) -> None:
    """Embed the style's real test images once into the feature cache every run reads."""
    from nsync_bench.metrics.cache import FeatureCache
    from nsync_bench.metrics.scoring import extract_features, extractors_for
    from nsync_bench.progress import NullProgress

    cache = FeatureCache(paths.cache_dir() / "features")
    weights_dir = Path(options.weights_dir) if options.weights_dir else None
    for extractor in extractors_for(metrics, weights_dir):
        extract_features(extractor, real, batch_size=metrics.batch_size, cache=cache, progress=NullProgress(),
                         label="real")


def run_task(task: Task, options: SweepOptions, experiment: str) -> TaskResult:
    """Execute one task in this process: lock, skip if finished, else run (resuming a checkpoint)."""
    from nsync_bench.config.run_config import RunConfig
    from nsync_bench.pipeline.runner import LOG_FILE, RunBusyError, execute

    started = time.perf_counter()
    run_dir = Path(task.run_dir)
    log_path = str(run_dir / LOG_FILE)
    try:  # execute takes the run key's lock (nsync_bench.pipeline.locking), as for `nsync-bench run`
        config = RunConfig.model_validate(task.config)
        result = execute(config, options.run_options(experiment))
        status = "skipped" if result.skipped else "finished"
        return TaskResult(task.run_key, task.label, status, time.perf_counter() - started, result.mlflow_run_id,
                          log_path)
    except RunBusyError as err:
        return TaskResult(task.run_key, task.label, "busy", error=str(err), log_path=log_path)
    except KeyboardInterrupt:  # SIGINT/SIGTERM: the run checkpointed, is KILLED in MLflow and unlocked; the sweep stops
        return TaskResult(task.run_key, task.label, "killed", time.perf_counter() - started, None, log_path,
                          "interrupted; the same sweep command resumes it from its checkpoint")
    except Exception as err:  # a failed run never stops the sweep
        detail = f"{type(err).__name__}: {err}"
        if not isinstance(err, NsyncBenchError):
            detail += "\n" + traceback.format_exc(limit=5)
        return TaskResult(task.run_key, task.label, "failed", time.perf_counter() - started, None, log_path, detail)


# -- sweep state: what the last attempt at each key ended with (for --retry-failed) --------------
def state_path(spec: SweepSpec, options: SweepOptions) -> Path:
    return paths.runs_dir(options.runs_dir) / spec.experiment_name() / STATE_FILE


def read_state(path: Path) -> dict[str, dict]:
    """The last outcome per run key; a torn or foreign file counts as no state (with a warning)."""
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        log.warning("ignoring the unreadable sweep state %s (%s): every run counts as never attempted", path, err)
        return {}
    if not isinstance(state, dict) or not all(isinstance(v, dict) for v in state.values()):
        log.warning("ignoring the sweep state %s: not a JSON object of runs", path)
        return {}
    return state


def write_state(path: Path, results: list[TaskResult]) -> None:
    state = read_state(path)
    state.update({r.run_key: asdict(r) for r in results})
    atomic_write_json(path, state, indent=2)


@dataclass
class PrepareStyle:
    """A picklable prerequisite job (runs in this process locally, or as a Slurm job)."""

    style: str
    configs: list[dict[str, Any]]
    options: SweepOptions

    def __call__(self) -> str:
        prepare_style(self.style, [RunConfig.model_validate(c) for c in self.configs], self.options)
        return self.style


@dataclass
class SweepSummary:
    results: list[TaskResult]
    state_file: Path
    experiment: str
    failed_styles: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result.status] = counts.get(result.status, 0) + 1
        return counts


def select_tasks(tasks: list[Task], spec: SweepSpec, options: SweepOptions, retry_failed: bool) -> list[Task]:
    if not retry_failed:
        return tasks
    state = read_state(state_path(spec, options))
    return [t for t in tasks if state.get(t.run_key, {}).get("status") in RETRY_STATUSES]


EventHandler = Callable[[Task, str, TaskResult | None], None]


class Executor(Protocol):
    """Where a sweep's jobs run (nsync_bench.sweep.executors implements it; :func:`run_sweep` drives it)."""

    def prepare(self, jobs: list[PrepareStyle]) -> dict[str, str]:
        """Run the styles' prerequisite jobs to completion (the negative sets need the GPU); ``{style: error}``
        of those that failed (their runs cannot start; the others go on)."""
        ...

    def run(self, tasks: list[Task], options: SweepOptions, experiment: str,
            on_event: EventHandler) -> list[TaskResult]:
        """Run every task (a failed one never stops the others); one result per task, in any order."""
        ...


def run_sweep(spec: SweepSpec, executor: Executor, options: SweepOptions, *, retry_failed: bool = False,
              on_event: EventHandler | None = None) -> SweepSummary:
    """Expand, prepare each style once, run every task through ``executor``, record the outcome."""
    from nsync_bench.pipeline.runner import check_locations

    on_event = on_event or (lambda task, status, result: None)
    experiment = spec.experiment_name()
    check_locations(options.run_options(experiment))
    tasks = select_tasks(expand(spec, options), spec, options, retry_failed)
    for task in tasks:
        on_event(task, "queued", None)
    results: list[TaskResult] = []
    jobs = [PrepareStyle(style, [t.config for t in tasks if t.style == style], options)
            for style in dict.fromkeys(t.style for t in tasks)]
    failed_styles = executor.prepare(jobs)  # every style at once where the executor can (Slurm)
    for style, err in failed_styles.items():  # the style's runs cannot start; the other styles go on
        log.error("preparing style %s failed: %s", style, err)
        for task in [t for t in tasks if t.style == style]:
            result = TaskResult(task.run_key, task.label, "failed", error=f"preparation failed: {err}")
            results.append(result)
            on_event(task, "failed", result)
    runnable = [t for t in tasks if t.style not in failed_styles]
    if runnable:
        from nsync_bench.tracking.tracker import ensure_experiment

        # Create the experiment once, here, rather than in workers racing to create the same one (the store
        # itself is opened under its init lock: tracking/tracker.client_for).
        ensure_experiment(paths.tracking_uri(options.tracking_uri), experiment)
    path = state_path(spec, options)
    try:
        results.extend(executor.run(runnable, options, experiment, on_event))
    except KeyboardInterrupt as stop:  # every running task checkpointed, turned KILLED and unlocked
        results += stop.results if isinstance(stop, SweepInterrupted) else []
        write_state(path, results)
        raise SweepInterrupted(results) from None
    write_state(path, results)
    return SweepSummary(results, path, experiment, failed_styles)

