"""File I/O: atomic writes (readers see the old file or the new one, never half of one) and content
hashes (the identity of images, weights and archives throughout the project).

Every writer goes through :func:`atomic_open`: a temporary file in the target's own folder (so the
final ``os.replace`` is a rename on one file system), flushed and fsynced, then renamed over the
target; on any error the temporary file is removed and the target is untouched. Directory swaps
(checkpoints, rendered sets, snapshots) have other semantics and do not use this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing (``"wb"`` or ``"w"``); on a clean exit it is
    fsynced and renamed to ``path``. The folder is created if missing."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'wb' or 'w', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding if mode == "w" else None) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    with atomic_open(path, "w", encoding=encoding) as handle:
        handle.write(text)


def atomic_write_json(path: str | Path, obj: Any, **dumps_kwargs: Any) -> None:
    """``json.dumps(obj, **dumps_kwargs)`` written atomically (UTF-8)."""
    atomic_write_text(path, json.dumps(obj, **dumps_kwargs))


def file_sha256(path: str | Path, chunk_size: int = CHUNK) -> str:
    """Hex sha256 of a file's bytes, read in chunks (multi-GB checkpoints fit in no memory budget)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
