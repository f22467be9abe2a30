"""On-disk feature cache keyed by what determines the features.

Key = sha256 of (extractor implementation id — network, weights hash, preprocessing — and the
sorted list of (file name, sha256 of file bytes)). A changed image, a renamed file, other
weights or another preprocessing all miss. Entries are ``.npz`` files written atomically and
verified when read (a zip that opens, a finite 2-D array with one row per image): an entry that
fails is removed with a warning and recomputed, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from nsync_bench.io import atomic_open, file_sha256

log = logging.getLogger(__name__)


def cache_key(implementation_id: str, files: list[Path]) -> str:
    entries = sorted((p.name, file_sha256(p)) for p in files)
    payload = json.dumps({"extractor": implementation_id, "files": entries})
    return hashlib.sha256(payload.encode()).hexdigest()


class FeatureCache:
    """``root/<kind>/<key[:2]>/<key>.npz`` holding ``features`` (float64) and ``files`` (names)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.npz"

    def get(self, kind: str, key: str, rows: int | None = None) -> np.ndarray | None:
        """The cached features (``rows`` of them, when given), or None: absent, or damaged and removed."""
        path = self.path(kind, key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                features = np.asarray(data["features"])
            problem = _problem(features, rows)
        except Exception as err:  # a torn zip raises BadZipFile, EOFError, OSError, ValueError, KeyError, ...
            problem = f"{type(err).__name__}: {err}"
        if problem:
            log.warning("feature cache entry %s is damaged (%s); removed, the features are recomputed", path, problem)
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return features

    def put(self, kind: str, key: str, features: np.ndarray, files: list[Path]) -> None:
        if _problem(features, len(files)):
            raise ValueError(f"refusing to cache {kind} features: {_problem(features, len(files))}")
        path = self.path(kind, key)
        with atomic_open(path, "wb") as handle:
            np.savez(handle, features=features, files=np.array([p.name for p in files]))


def _problem(features: np.ndarray, rows: int | None) -> str | None:
    if features.ndim != 2:
        return f"shape {features.shape}, not (images, dimensions)"
    if rows is not None and features.shape[0] != rows:
        return f"{features.shape[0]} rows for {rows} images"
    if not np.isfinite(features).all():
        return "non-finite values"
    return None
