"""Teaching errors for unusable locations: checked before anything is written there.

A runs folder or data root below a regular file, an SQLite store in ``/proc`` or below a file, or
a ``file://`` store (MLflow's file store is gone) would otherwise end in a raw traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from nsync_bench.errors import NsyncBenchError

SPECIAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


class PathError(NsyncBenchError):
    """A folder or store location cannot be used."""


def _first_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def usable_dir(path: Path, what: str, fix: str) -> Path:
    """``path`` if it is (or can be created as) a writable folder; else a :class:`PathError` saying why."""
    path = Path(path).expanduser().absolute()
    for root in SPECIAL_ROOTS:
        if path == root or root in path.parents:
            raise PathError(f"{what} {path} lies in {root}, a kernel file system where nothing can be stored. {fix}")
    existing = _first_existing(path)
    if not existing.is_dir():
        where = "is a regular file" if existing == path else f"lies below the regular file {existing}"
        raise PathError(f"{what} {path} {where}, not a folder. {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PathError(f"{what} {path} cannot be created or written: {existing} is not writable by this user. {fix}")
    return path


def check_tracking_uri(uri: str, *, must_exist: bool = False) -> None:
    """Refuse file stores and unusable SQLite paths; ``must_exist``: a reader must not create a new empty store."""
    fix = "Fix --tracking-uri / MLFLOW_TRACKING_URI (e.g. sqlite:///path/to/mlflow.db or http://host:5000)."
    if uri.startswith("file:") or ("://" not in uri and not uri.startswith("sqlite:")):
        raise PathError(f"tracking URI {uri!r} is an MLflow file store, which current MLflow no longer supports. "
                        f"Use an SQLite store, e.g. sqlite:///$PWD/mlflow.db, or a tracking server. {fix}")
    if not uri.startswith("sqlite:"):
        return
    if not uri.startswith("sqlite:///") or uri == "sqlite:///":
        raise PathError(f"tracking URI {uri!r} names no SQLite file; write sqlite:/// and a path, e.g. "
                        f"sqlite:///{Path('mlflow.db').absolute()}. {fix}")
    db = Path(uri.removeprefix("sqlite:///"))
    if must_exist and not db.is_file():
        raise PathError(f"there is no MLflow store at {db} (tracking URI {uri!r}); nothing was created. Runs are "
                        f"logged where `run`/`sweep` were pointed (default ./mlflow.db in their working folder). {fix}")
    if db.is_dir():
        raise PathError(f"the SQLite store {db} is a folder, not a database file. {fix}")
    usable_dir(db.parent, "the SQLite store's folder", fix)
