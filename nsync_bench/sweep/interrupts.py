"""Stopping a sweep cleanly: SIGINT (Ctrl-C) or SIGTERM checkpoint every running run and stop every worker.

The sweep's own process turns SIGTERM into ``KeyboardInterrupt``, as Ctrl-C (:func:`interrupt_on_sigterm`).
A run interrupted in its process saves a checkpoint at its last completed step, closes its MLflow run
as KILLED and releases its lock (nsync_bench.pipeline.runner, nsync_bench.training.trainer); the same
sweep command then resumes it, logging to the same MLflow run.

Local worker processes get the same treatment from the pool (nsync_bench.sweep.executors): on an
interrupt it sends each worker SIGTERM and waits up to :data:`STOP_TIMEOUT_S` for their runs to stop
so; a worker that does not is killed (its lock is then broken by the next run, which resumes from
the last periodic checkpoint). In a worker (:func:`init_worker`), the first signal interrupts the run
it is executing and further ones are ignored, so a second Ctrl-C cannot cut its checkpoint short; an
idle worker ignores the signal and exits when the pool shuts down. On Linux a worker also receives
SIGTERM when the sweep process dies without cleaning up (even by SIGKILL), and exits once its run has
stopped: no worker outlives the sweep.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 120.0  # a run saves one checkpoint and closes its MLflow run; real checkpoints take seconds
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by SIGINT/SIGTERM after its runs checkpointed; ``results`` holds what each task ended as."""

    def __init__(self, results: list[Any]) -> None:
        super().__init__("sweep interrupted")
        self.results = results


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler's preemption, ``timeout``, ``kill``) is handled like Ctrl-C from now on."""
    signal.signal(signal.SIGTERM, _raise_interrupt)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A Python-level no-op, not ``SIG_IGN``: a signal already pending when the handler changes would
    otherwise be reported as "Signal N ignored due to race condition" with a traceback."""


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """While the sweep stops its workers, a second Ctrl-C or SIGTERM must not abandon them half-stopped."""
    previous = {sig: signal.signal(sig, _ignore) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- in a worker process ---------------------------------------------------------------------------
_WORKER: dict[str, Any] = {"in_task": False, "parent": None, "interrupted": False}


def _parent_gone() -> bool:
    return _WORKER["parent"] is not None and os.getppid() != _WORKER["parent"]


def _worker_signal(signum: int, frame: FrameType | None) -> None:
    if _WORKER["in_task"]:
        if not _WORKER["interrupted"]:
            _WORKER["interrupted"] = True
            raise KeyboardInterrupt
        return  # once: the run's checkpoint and MLflow status must not be cut short
    if _parent_gone():
        os._exit(128 + signum)
    # idle, with the sweep alive: the pool's shutdown ends this process


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the process that started it dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def init_worker() -> None:
    """Worker initializer (before any task): signal handlers and the tie to the sweep's process."""
    _WORKER["parent"] = os.getppid()
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _worker_signal)
    _die_with_parent()
    if _parent_gone():  # the sweep died before the tie was made
        os._exit(1)


@contextlib.contextmanager
def task_running() -> Iterator[None]:
    """Marks a worker busy (a signal interrupts the run); afterwards it exits if the sweep is gone."""
    _WORKER["in_task"] = True
    try:
        yield
    finally:
        _WORKER["in_task"] = False
        if _parent_gone():
            log.warning("the sweep process is gone; worker %d exits after stopping its run", os.getpid())
            os._exit(143)


__all__ = ["STOP_TIMEOUT_S", "SweepInterrupted", "init_worker", "interrupt_on_sigterm", "signals_ignored",
           "task_running"]
