"""A per-run-key lock that two workers never hold at once and a dead worker does not hold forever.

The lock is a file created with ``O_CREAT | O_EXCL`` (atomic on local disks and NFS v3+) holding
the owner's host, pid and start time; a heartbeat thread touches it every ``heartbeat_s``. A lock
is stale, and may be broken, when its owner is a dead process on this host, or when its heartbeat
is older than ``stale_after_s`` (an owner on another host that died, e.g. a preempted Slurm job).
``fcntl.flock`` alone would not do: it is unreliable on the network filesystems clusters share.

A Slurm job that is preempted and requeued keeps its job id and may restart on another host within
the heartbeat window of its own dead predecessor. The owner record names the Slurm job (array task
included) and its restart count (``SLURM_RESTART_COUNT``), so the requeued job recognises its
predecessor's lock by a lower count and breaks it at once (Slurm runs one instance of a job at a time)
instead of reporting the run busy. ``acquire(wait_s)``
waits that long for a lock held elsewhere to be released or to go stale (a sweep's Slurm jobs wait one
stale window, so a dead owner on another host is outlived, not reported).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)


HEARTBEAT_S = 30.0  # how often a holder touches its lock file
STALE_AFTER_S = 300.0  # silence after which a holder on another host counts as dead


class LockHeld(Exception):
    """Another live worker holds the lock."""


def slurm_identity(environ: dict[str, str] | None = None) -> tuple[str | None, int]:
    """``(job, restart count)`` of the Slurm job this process runs in: ``<array job>_<task>`` or the job id."""
    env = os.environ if environ is None else environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        job: str | None = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    else:
        job = env.get("SLURM_JOB_ID") or None
    try:
        restart = int(env.get("SLURM_RESTART_COUNT", "0") or 0)
    except ValueError:
        restart = 0
    return job, restart


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` still runs. A zombie (killed, not yet reaped: a SIGKILLed sweep's worker waits for
    init to reap it) answers signal 0 but holds nothing, so it counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: the state letter follows the parenthesised command name
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class RunLock:
    def __init__(self, path: Path, *, heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S) -> None:
        self.path = Path(path)
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def owner(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def is_stale(self) -> bool:
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return True
        owner = self.owner() or {}
        job, restart = slurm_identity()
        if job is not None and owner.get("slurm_job") == job and int(owner.get("slurm_restart", 0)) < restart:
            return True  # this job's earlier incarnation: requeued since, and Slurm runs a job once at a time
        if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
            return not _pid_alive(owner["pid"])
        return age > self.stale_after_s

    def _record(self) -> dict:
        job, restart = slurm_identity()
        record: dict = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        if job is not None:
            record.update(slurm_job=job, slurm_restart=restart)
        return record

    def acquire(self, wait_s: float = 0.0) -> None:
        """Take the lock; a live holder raises :class:`LockHeld`, after waiting up to ``wait_s`` seconds for it
        to be released or to go stale."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self._try_acquire()
                return
            except LockHeld:
                if time.monotonic() >= deadline:
                    raise
                log.info("%s is held by %s; waiting up to %.0f s more", self.path, self.owner(),
                         deadline - time.monotonic())
                time.sleep(max(0.05, min(self.heartbeat_s, 5.0, deadline - time.monotonic())))

    def _try_acquire(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self.is_stale():
                    raise LockHeld(f"{self.path} is held by {self.owner()}") from None
                log.warning("breaking the stale lock %s (owner %s)", self.path, self.owner())
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(self._record(), handle)
            self._start_heartbeat()
            return
        raise LockHeld(f"{self.path} was taken by another worker")

    def _start_heartbeat(self) -> None:
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(self.heartbeat_s):
                try:
                    os.utime(self.path)
                except FileNotFoundError:
                    return

        self._thread = threading.Thread(target=beat, name=f"lock-heartbeat-{self.path.name}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        owner = self.owner() or {}
        if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
