"""File I/O: atomic writes (readers see the old file or the new one, never half of one), verified
reads (a torn or altered file is named, never half-trusted) and content hashes (the identity of
images, weights and archives throughout the project).

Every file writer goes through :func:`atomic_open`: a temporary file in the target's own folder (so
the final ``os.replace`` is a rename on one file system), flushed and fsynced, then renamed over the
target; on any error the temporary file is removed and the target is untouched. Every folder that
must appear whole (checkpoints, adapters, negative sets, reports) goes through :func:`atomic_dir`:
filled in a temporary sibling, then renamed into place. Both give what they publish the permissions
an ordinary file or folder would get (``0666``/``0777`` less the umask), not the ``0600``/``0700`` of
:mod:`tempfile`: a data root shared by a group stays readable by it. A full disk is a
:class:`~nsync_bench.errors.DiskFullError` naming the folder and the space needed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from nsync_bench.errors import CorruptFileError, DiskFullError

CHUNK = 1 << 20
CHECKSUMS_FILE = "checksums.json"


def _umask() -> int:
    """The process umask, read without changing it where the kernel tells it (Linux >= 4.7)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode(directory: bool) -> int:
    return (0o777 if directory else 0o666) & ~_umask()


def _human(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - the loop returns


def _disk_full(folder: Path, what: str, needed: int | None, written: int = 0) -> DiskFullError:
    free = shutil.disk_usage(folder).free if folder.exists() else 0
    need = (f"needs {_human(needed)}" if needed else
            f"needs more than the {_human(written)} written before the disk filled up" if written else
            "needs more space")
    return DiskFullError(
        f"no space left in {folder} ({_human(free)} free): writing {what} {need}. Free space there or point the "
        "folder elsewhere (--runs-dir / NSYNC_BENCH_RUNS_DIR, --data-root, NSYNC_BENCH_CACHE_DIR, --out), then run "
        "the same command again: nothing written before was lost, and a run resumes from its last checkpoint.")


def require_space(folder: str | Path, needed: int, what: str) -> None:
    """Raise :class:`DiskFullError` unless ``folder``'s file system has ``needed`` bytes free."""
    folder = Path(folder)
    if shutil.disk_usage(folder).free < needed:
        raise _disk_full(folder, what, needed)


def _is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_error(err: BaseException, folder: str | Path) -> DiskFullError | None:
    """A :class:`DiskFullError` for an ``ENOSPC``/``EDQUOT`` raised by a plain write (naming its file's folder,
    else ``folder``); None for any other error."""
    if not _is_disk_full(err):
        return None
    assert isinstance(err, OSError)
    where = Path(err.filename).parent if err.filename else Path(folder)
    return _disk_full(where if where.exists() else Path(folder), Path(err.filename).name if err.filename else
                      "a file", None)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", encoding: str | None = None,
                size: int | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing (``"wb"`` or ``"w"``); on a clean exit it is
    fsynced and renamed to ``path``. The folder is created if missing. ``size``, when known, is checked
    against the free space first (and named if the disk is full)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'wb' or 'w', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if size is not None:
        require_space(path.parent, size, str(path.name))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding if mode == "w" else None) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), _mode(directory=False))
        os.replace(tmp, path)
    except BaseException as err:
        written = Path(tmp).stat().st_size if Path(tmp).exists() else 0
        Path(tmp).unlink(missing_ok=True)
        if _is_disk_full(err):
            raise _disk_full(path.parent, str(path.name), size, written) from err
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb", size=len(data)) as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, obj: Any, **dumps_kwargs: Any) -> None:
    """``json.dumps(obj, **dumps_kwargs)`` written atomically (UTF-8)."""
    atomic_write_text(path, json.dumps(obj, **dumps_kwargs))


def _publish_tree(root: Path) -> None:
    """Ordinary permissions for everything under ``root`` and its contents on disk (fsync)."""
    os.chmod(root, _mode(directory=True))
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(Path(folder) / name, _mode(directory=True))
        for name in files:
            file = Path(folder) / name
            os.chmod(file, _mode(directory=False))
            with file.open("rb") as handle:
                os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, replace: bool = True) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on a clean exit it becomes ``path`` in one rename.

    ``replace``: an existing ``path`` is swapped out (and removed); otherwise the existing one is kept
    and the new one discarded (another process finished the same content first). On any error, or
    Ctrl-C, the temporary folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        yield tmp
        _publish_tree(tmp)
        if not path.exists():
            os.replace(tmp, path)
        elif replace:
            old = Path(tempfile.mkdtemp(prefix=f".old-{path.name}-", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException as err:
        written = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file()) if tmp.exists() else 0
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_disk_full(err):
            raise _disk_full(path.parent, f"{path.name}/", None, written) from err
        raise


def file_sha256(path: str | Path, chunk_size: int = CHUNK) -> str:
    """Hex sha256 of a file's bytes, read in chunks (multi-GB checkpoints fit in no memory budget)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- verified reads ------------------------------------------------------------------------------
def read_json(path: str | Path, what: str, fix: str, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """``path`` parsed as a JSON object holding the ``required`` keys; else a
    :class:`CorruptFileError` naming the file, what is wrong and ``fix``. A missing file raises
    :class:`FileNotFoundError` (absent is not corrupt)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as err:
        reason = f"{type(err).__name__}: {err}"
        raise CorruptFileError(f"{what} {path} is unreadable or truncated ({reason}). {fix}") from None
    if not isinstance(data, dict):
        raise CorruptFileError(f"{what} {path} holds a JSON {type(data).__name__}, not a JSON object. {fix}")
    missing = [key for key in required if key not in data]
    if missing:
        raise CorruptFileError(f"{what} {path} lacks {', '.join(map(repr, missing))}. {fix}")
    return data


def write_checksums(folder: str | Path, names: list[str]) -> dict[str, str]:
    """Record the sha256 of the files ``names`` in ``folder`` in its ``checksums.json`` (returned too)."""
    folder = Path(folder)
    sums = {name: file_sha256(folder / name) for name in sorted(names)}
    atomic_write_json(folder / CHECKSUMS_FILE, {"sha256": sums}, indent=1, sort_keys=True)
    return sums


def verify_checksums(folder: str | Path, what: str, fix: str) -> dict[str, str]:
    """Check every file ``checksums.json`` lists against its recorded sha256; a missing, torn or altered
    file is a :class:`CorruptFileError` naming it."""
    folder = Path(folder)
    try:
        record = read_json(folder / CHECKSUMS_FILE, f"the checksums of {what}", fix, required=("sha256",))
    except FileNotFoundError:
        raise CorruptFileError(f"{what} {folder} has no {CHECKSUMS_FILE}: nothing to verify it by. {fix}") from None
    sums: dict[str, str] = record["sha256"]
    for name, expected in sums.items():
        file = folder / name
        if not file.is_file():
            raise CorruptFileError(f"{what}: {file} is missing. {fix}")
        if file_sha256(file) != expected:
            raise CorruptFileError(f"{what}: {file} does not match the sha256 recorded when it was written (torn, "
                                   f"truncated or altered since). {fix}")
    return sums
