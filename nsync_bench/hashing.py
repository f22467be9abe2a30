"""Content hashes of files: the identity of images, weights and archives throughout the project."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def file_sha256(path: str | Path, chunk_size: int = CHUNK) -> str:
    """Hex sha256 of a file's bytes, read in chunks (multi-GB checkpoints fit in no memory budget)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
