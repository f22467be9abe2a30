"""A per-run-key lock that two workers never hold at once and a dead worker does not hold forever.

The lock is a file created with ``O_CREAT | O_EXCL`` (atomic on local disks and NFS v3+) holding
the owner's host, pid and start time; a heartbeat thread touches it every ``heartbeat_s``. A lock
is stale, and may be broken, when its owner is a dead process on this host, or when its heartbeat
is older than ``stale_after_s`` (an owner on another host that died, e.g. a preempted Slurm job).
``fcntl.flock`` alone would not do: it is unreliable on the network filesystems clusters share.
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


class LockHeld(Exception):
    """Another live worker holds the lock."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    def __init__(self, path: Path, *, heartbeat_s: float = 30.0, stale_after_s: float = 300.0) -> None:
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
        if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
            return not _pid_alive(owner["pid"])
        return age > self.stale_after_s

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
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
                json.dump({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}, handle)
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
