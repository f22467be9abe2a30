"""Locations: data, runs, caches and the MLflow store (each can be overridden), the shipped folders,
and teaching errors for unusable locations, checked before anything is written there.

Precedence for each location: explicit argument (CLI option) > environment variable > default.
A runs folder or data root below a regular file, an SQLite store in ``/proc`` or below a file, or
a ``file://`` store (MLflow's file store is gone) would otherwise end in a raw traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from nsync_bench.errors import NsyncBenchError

DATA_ROOT_ENV = "NSYNC_BENCH_DATA_ROOT"
RUNS_DIR_ENV = "NSYNC_BENCH_RUNS_DIR"
CACHE_DIR_ENV = "NSYNC_BENCH_CACHE_DIR"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
_PACKAGE_DIR = Path(__file__).resolve().parent
SPECIAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def default_experiment(profile: str) -> str:
    """The MLflow experiment of a profile's runs when none is named (``--experiment``)."""
    return f"nsync-bench-{profile}"


def data_root(override: str | Path | None = None) -> Path:
    """Style datasets: ``<root>/<style>/{train,test}/``. Default: the user data dir."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV]).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("nsync-bench")) / "data"


def cache_dir(override: str | Path | None = None) -> Path:
    """Derived files that can be rebuilt (tokenizer files, feature caches). Default: user cache dir."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_cache_dir("nsync-bench"))


def runs_dir(override: str | Path | None = None) -> Path:
    """Run outputs (config, checkpoints, adapter, evaluation images). Default: ``./runs``."""
    if override:
        return Path(override).expanduser().resolve()
    return Path(os.environ.get(RUNS_DIR_ENV, "runs")).expanduser().resolve()


def tracking_uri(override: str | None = None) -> str:
    """MLflow store. Default: SQLite ``./mlflow.db`` in the working directory (no server needed)."""
    if override:
        return override
    if os.environ.get(TRACKING_URI_ENV):
        return os.environ[TRACKING_URI_ENV]
    return f"sqlite:///{Path('mlflow.db').resolve()}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI; None for any other URI, and for an in-memory store
    (``sqlite:///:memory:``), which has no file beside which anything could be written."""
    if not uri.startswith("sqlite:///"):
        return None
    name = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if name in ("", ":memory:") else Path(name)


def artifact_root(uri: str) -> str | None:
    """Where a local SQLite store keeps artifacts: ``mlartifacts/`` beside the database file.

    None for server URIs: the server decides.
    """
    db = sqlite_file(uri)
    return None if db is None else (db.parent / "mlartifacts").resolve().as_uri()


def shipped_dir(name: str) -> Path:
    """The folder ``datasets`` or ``baselines``: the repository's top-level one in a checkout or editable
    install, the copy under ``nsync_bench/_shipped/`` in a wheel."""
    for candidate in (_PACKAGE_DIR / "_shipped" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"cannot find the shipped folder {name!r} next to the package ({_PACKAGE_DIR}); "
        "reinstall nsync-bench (pip install -e . from a checkout, or the wheel)."
    )


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


# A user string that becomes one folder name (an experiment under the runs folder): portable characters
# only, so it can neither climb out ('/', '..'), split a line ('\n'), hide ('.x') nor exceed a file
# system's 255-byte limit once the run folder's own parts are added.
NAME_CHARACTERS = "letters, digits, '.', '_', '+', '=', '@' and '-'"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=@-]*")
MAX_NAME_LENGTH = 100


def check_name(value: str, what: str, option: str) -> str:
    """``value`` if it is safe as one folder name; else a :class:`PathError` saying why and what would do."""
    if not value:
        problem = "is empty"
    elif len(value) > MAX_NAME_LENGTH:
        problem = f"has {len(value)} characters (at most {MAX_NAME_LENGTH})"
    elif not _NAME.fullmatch(value):
        odd = sorted({c for c in value if not re.fullmatch(r"[A-Za-z0-9._+=@-]", c)})
        problem = (f"contains {', '.join(repr(c) for c in odd)}" if odd else
                   f"starts with {value[0]!r}")
    else:
        return value
    suggestion = re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9._+=@-]+|\.{2,}", "-", value))
    suggestion = suggestion.strip("._-+=@")[:MAX_NAME_LENGTH] or "my-experiment"
    shown = repr(value) if len(value) <= 80 else f"{value[:40]!r}..."
    raise PathError(f"{what} name {shown} {problem}; it becomes a folder name, so use {NAME_CHARACTERS}, starting "
                    f"with a letter or digit, at most {MAX_NAME_LENGTH} characters (e.g. {suggestion!r}). Pass "
                    f"another {option}. Nothing was run.")
