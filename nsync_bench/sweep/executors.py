"""Where sweep tasks run: in this process, in N local worker processes, or on Slurm via submitit.

Every executor implements :class:`Executor`: ``prepare(jobs)`` runs the styles' prerequisite jobs (their
negative sets) to completion before their tasks (on Slurm all at once, as parallel jobs), and ``run`` calls
:func:`nsync_bench.sweep.matrix.run_task` for each task and reports status changes through
``on_event(task, status, result)``; a failed task never stops the others. SIGINT or SIGTERM stops them
all: each running task checkpoints, is marked KILLED and unlocked, and ``run`` raises
:class:`~nsync_bench.sweep.interrupts.SweepInterrupted` (nsync_bench.sweep.interrupts).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from nsync_bench.config.run_config import RunConfig
from nsync_bench.errors import unknown_name
from nsync_bench.sweep.interrupts import STOP_TIMEOUT_S, SweepInterrupted, init_worker, signals_ignored, task_running
from nsync_bench.sweep.matrix import EventHandler, Executor, PrepareStyle, SweepOptions, Task, TaskResult, run_task

log = logging.getLogger(__name__)

def _prepare_here(jobs: list[PrepareStyle]) -> dict[str, str]:
    """One style after another in this process (the GPU is this machine's): ``{style: error}``."""
    failed = {}
    for job in jobs:
        try:
            job()
        except Exception as err:  # this style's runs cannot start; the other styles go on
            failed[job.style] = f"{type(err).__name__}: {err}"
    return failed


def _failed(task: Task, err: BaseException) -> TaskResult:
    return TaskResult(task.run_key, task.label, "failed", error=f"{type(err).__name__}: {err}",
                      log_path=str(Path(task.run_dir) / "run.log"))


class InProcessExecutor:
    """Tasks one after another in this process (simple, debuggable)."""

    def prepare(self, jobs: list[PrepareStyle]) -> dict[str, str]:
        return _prepare_here(jobs)

    def run(self, tasks: list[Task], options: SweepOptions, experiment: str,
            on_event: EventHandler) -> list[TaskResult]:
        results = []
        for task in tasks:
            on_event(task, "running", None)
            result = run_task(task, options, experiment)
            on_event(task, result.status, result)
            results.append(result)
            if result.status == "killed":  # SIGINT/SIGTERM: this run checkpointed; the others wait for a rerun
                raise SweepInterrupted(results)
        return results


def _worker(task: dict, options: dict, experiment: str) -> dict:
    """Entry point of a worker process (plain dicts cross the process boundary)."""
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)  # the run's INFO lines go to its run.log, not to the sweep's terminal
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    with task_running():  # a signal now interrupts this run (nsync_bench.sweep.interrupts)
        return asdict(run_task(Task(**task), SweepOptions(**options), experiment))


def _pin_device(devices: Any) -> None:
    """Worker initializer: take one device id and make it the only GPU this process sees.

    Runs before the worker imports torch, so CUDA initialises with that device alone.
    """
    init_worker()
    device = devices.get()
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    log.info("worker %d pinned to GPU %s", os.getpid(), device)


def make_pool(max_parallel: int, devices: list[str] | None = None) -> ProcessPoolExecutor:
    """Spawned workers (torch is not fork-safe); with ``devices``, worker k gets GPU ``devices[k]``."""
    context = get_context("spawn")
    if not devices:
        return ProcessPoolExecutor(max_parallel, mp_context=context, initializer=init_worker)
    if len(devices) < max_parallel:
        raise ValueError(f"--devices names {len(devices)} GPUs for {max_parallel} workers: one GPU per worker.")
    queue = context.Queue()
    for device in devices[:max_parallel]:
        queue.put(device)
    return ProcessPoolExecutor(max_parallel, mp_context=context, initializer=_pin_device, initargs=(queue,))


class LocalPoolExecutor:
    """Up to ``max_parallel`` tasks at once, each in a worker process; one GPU per worker with ``devices``
    (a multi-GPU machine runs one run per GPU)."""

    def __init__(self, max_parallel: int, devices: list[str] | None = None) -> None:
        self.max_parallel = max_parallel
        self.devices = devices

    def prepare(self, jobs: list[PrepareStyle]) -> dict[str, str]:
        """In this (the sweep's) process, before the workers start: one job per style, not one per worker."""
        return _prepare_here(jobs)

    def run(self, tasks: list[Task], options: SweepOptions, experiment: str,
            on_event: EventHandler) -> list[TaskResult]:
        results: list[TaskResult] = []
        pending = list(tasks)
        running: dict[Any, Task] = {}
        # Workers are reused across tasks: importing torch, diffusers and mlflow costs ~10 s per process.
        # At most max_parallel tasks are submitted at a time, so none waits in the pool's queue.
        with make_pool(self.max_parallel, self.devices) as pool:
            try:
                while pending or running:
                    while pending and len(running) < self.max_parallel:
                        task = pending.pop(0)
                        running[pool.submit(_worker, asdict(task), asdict(options), experiment)] = task
                        on_event(task, "running", None)
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        results.append(_collect(running.pop(future), future, on_event))
                        if results[-1].status == "killed":
                            # A signal stopped a worker's run but has not (yet) reached this process (sent to
                            # the workers only, or racing Ctrl-C to the group): stop the sweep as for Ctrl-C.
                            raise KeyboardInterrupt
            except KeyboardInterrupt:
                with signals_ignored():
                    results += _stop_workers(pool, running, on_event)
                raise SweepInterrupted(results) from None
        return results


def _collect(task: Task, future: Any, on_event: EventHandler) -> TaskResult:
    try:
        result = TaskResult(**future.result())
    except Exception as err:  # the worker process itself died (killed, out of memory, ...)
        result = _failed(task, err)
    on_event(task, result.status, result)
    return result


def _stop_workers(pool: ProcessPoolExecutor, running: dict[Any, Task], on_event: EventHandler) -> list[TaskResult]:
    """SIGTERM every worker (a running task checkpoints, turns KILLED, unlocks; an idle one ignores it), wait for
    the running tasks, kill what did not stop in time. No worker outlives this (the pool's exit joins them)."""
    processes = list(getattr(pool, "_processes", {}).values())  # the pool has no public handle on its workers
    for process in processes:
        if process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
    log.warning("interrupted: stopping %d running task(s); each saves a checkpoint first", len(running))
    done, late = wait(running, timeout=STOP_TIMEOUT_S)
    results = [_collect(running.pop(future), future, on_event) for future in done]
    if late:
        for process in processes:
            if process.is_alive():
                process.kill()
        for future in late:
            task = running.pop(future)
            result = TaskResult(task.run_key, task.label, "killed", log_path=str(Path(task.run_dir) / "run.log"),
                                error=f"did not stop within {STOP_TIMEOUT_S:.0f} s of SIGTERM and was killed; it "
                                "resumes from its last periodic checkpoint")
            on_event(task, "killed", result)
            results.append(result)
    return results


@dataclass
class SlurmSettings:
    partition: str | None = None
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 32
    timeout_min: int = 24 * 60
    array_parallelism: int = 16
    folder: str = "slurm-logs"
    cluster: str | None = None  # None: slurm when available; "local" runs the same path on this machine


class SweepJob:
    """A submitit job function that requeues itself on preemption or timeout.

    On requeue the task runs again from the top and the runner resumes from its last checkpoint,
    so a preempted run loses at most ``train.checkpoint_every`` steps and ends bit-identical.
    """

    def __init__(self, options: SweepOptions, experiment: str) -> None:
        self.options = options
        self.experiment = experiment

    def __call__(self, task: Task) -> TaskResult:
        # A lock held on another host may be this job's own dead predecessor's (or an earlier sweep's): wait
        # out one stale window rather than report the run busy (nsync_bench.pipeline.locking).
        from dataclasses import replace

        from nsync_bench.pipeline.locking import HEARTBEAT_S, STALE_AFTER_S

        wait = max(self.options.lock_wait_s, STALE_AFTER_S + HEARTBEAT_S)
        return run_task(task, replace(self.options, lock_wait_s=wait), self.experiment)

    def checkpoint(self, task: Task) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, task)


class SlurmExecutor:
    """A Slurm job array through submitit (``cluster="local"`` exercises the same path without Slurm)."""

    def __init__(self, settings: SlurmSettings) -> None:
        self.settings = settings

    def make_executor(self) -> Any:
        import submitit

        s = self.settings
        executor = submitit.AutoExecutor(folder=str(Path(s.folder) / "%j"), cluster=s.cluster)
        parameters: dict[str, Any] = {"timeout_min": s.timeout_min, "gpus_per_node": s.gpus_per_node,
                                      "cpus_per_task": s.cpus_per_task, "mem_gb": s.mem_gb,
                                      "slurm_array_parallelism": s.array_parallelism, "name": "nsync-bench"}
        if s.partition:
            parameters["slurm_partition"] = s.partition
        executor.update_parameters(**parameters)
        return executor

    def prepare(self, jobs: list[PrepareStyle]) -> dict[str, str]:
        """Submit every style's prerequisite job at once (negative sets need a GPU each), then wait for all."""
        if not jobs:
            return {}
        executor = self.make_executor()
        submitted = [(job, executor.submit(job)) for job in jobs]
        for job, handle in submitted:
            log.info("preparing %s as job %s (logs: %s)", job.style, handle.job_id, handle.paths.stdout)
        failed = {}
        for job, handle in submitted:
            try:
                handle.result()  # waits; raises when the job failed
            except Exception as err:  # the job failed on the cluster: that style's runs cannot start
                failed[job.style] = f"{type(err).__name__}: {err} (logs: {handle.paths.stderr})"
        return failed

    def run(self, tasks: list[Task], options: SweepOptions, experiment: str,
            on_event: EventHandler) -> list[TaskResult]:
        executor = self.make_executor()
        jobs = executor.map_array(SweepJob(options, experiment), tasks)
        for task, job in zip(tasks, jobs, strict=True):
            log.info("submitted %s as job %s (logs: %s)", task.label, job.job_id, job.paths.stdout)
            on_event(task, "queued", None)
        results: dict[str, TaskResult] = {}
        announced: set[str] = set()
        while len(results) < len(jobs):
            for task, job in zip(tasks, jobs, strict=True):
                if task.run_key in results:
                    continue
                if job.done():
                    try:
                        result = job.result()
                    except Exception as err:  # the job failed outside run_task (node failure, OOM kill)
                        result = _failed(task, err)
                        result.log_path = str(job.paths.stderr)
                    results[task.run_key] = result
                    on_event(task, result.status, result)
                elif task.run_key not in announced and job.state in ("RUNNING", "COMPLETING"):
                    announced.add(task.run_key)
                    on_event(task, "running", None)
            time.sleep(1.0)
        return [results[t.run_key] for t in tasks]


EXECUTORS = ("local", "slurm")
SERVER_DOCS = "docs/scale.md, 'MLflow at scale (PostgreSQL)'"


def check_store_for_executor(executor: str, tracking_uri: str, cluster: str | None = None,
                             allow_sqlite: bool = False) -> None:
    """Slurm jobs on many nodes writing one SQLite file (over a shared filesystem) lose runs to locking
    errors: refuse, pointing at a tracking server; ``--slurm-cluster local`` (one machine) only warns."""
    from nsync_bench.errors import ConfigError

    if executor != "slurm" or not tracking_uri.startswith("sqlite:"):
        return
    advice = (f"Run an MLflow tracking server on PostgreSQL and pass --tracking-uri http://HOST:PORT ({SERVER_DOCS}; "
              "`nox -s server` tests that setup)")
    if cluster == "local" or allow_sqlite:
        log.warning("the SQLite store %s with the Slurm executor: fine on one machine, but jobs on several nodes "
                    "will contend for its lock. %s.", tracking_uri, advice)
        return
    raise ConfigError(f"--executor slurm with the SQLite store {tracking_uri}: jobs on many nodes writing one SQLite "
                      f"file over a shared filesystem fail or lose runs. {advice}; or pass --allow-sqlite for jobs "
                      "that all run on one node.")


def default_parallel(config: RunConfig) -> int:
    """Local workers when ``--max-parallel`` is not given, from a run's resolved config: one per usable core
    for CPU runs of one thread each (smoke, toy: tiny models gain nothing from threads, and a second
    process per core beats a second thread), else 1 (a GPU run wants the device to itself; more GPUs
    through ``--devices``)."""
    from nsync_bench.models.cpu import usable_cores

    if config.device == "cpu" and config.cpu_threads == 1:
        return usable_cores()
    return 1


def make_executor(name: str, *, max_parallel: int = 1, slurm: SlurmSettings | None = None,
                  devices: list[str] | None = None) -> Executor:
    if name == "local":
        if devices:
            return LocalPoolExecutor(max_parallel if max_parallel > 1 else len(devices), devices)
        return InProcessExecutor() if max_parallel <= 1 else LocalPoolExecutor(max_parallel)
    if name == "slurm":
        return SlurmExecutor(slurm or SlurmSettings())
    raise unknown_name("executor", name, EXECUTORS)
