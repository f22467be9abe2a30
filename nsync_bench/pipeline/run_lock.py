"""One process per run key: ``run`` and every sweep worker take the key's lock (nsync_bench.pipeline.locking)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from nsync_bench.errors import NsyncBenchError


class RunBusyError(NsyncBenchError):
    """Another live process holds this run key's lock."""


@contextlib.contextmanager
def run_lock(run_dir: Path, key: str, wait_s: float = 0.0) -> Iterator[None]:
    """One process per run key (the sweep's lock): a second one refuses, naming the holder; ``wait_s``: how long
    to wait for a key held elsewhere first (a sweep's Slurm jobs: one stale window)."""
    from nsync_bench.pipeline.locking import LockHeld, RunLock

    lock = RunLock(run_dir.parent / f".{run_dir.name}.lock")
    try:
        lock.acquire(wait_s)
    except LockHeld:
        owner = lock.owner() or {}
        since = owner.get("since")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
        raise RunBusyError(
            f"run {key} is already running: process {owner.get('pid', '?')} on host {owner.get('host', '?')} holds "
            f"its lock {lock.path} (since {when}). Wait for it to finish, then run the same command again (a "
            "finished run is reused, not recomputed). A lock whose process died is broken automatically (at once "
            "on this host, after 5 minutes of silence from another host)."
        ) from None
    try:
        yield
    finally:
        lock.release()


__all__ = ["RunBusyError", "run_lock"]
