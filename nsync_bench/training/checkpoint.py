"""Checkpoints: trainable state, optimizer, scaler and RNG states at a step, written atomically.

A checkpoint is a folder ``checkpoint-<step>`` holding ``state.pt`` (tensors and plain
containers only, so it loads with ``torch.load(weights_only=True)``) and ``meta.json``. It is
written into a temporary sibling and renamed into place, so a crash never leaves a half-written
checkpoint that looks complete.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

PREFIX = "checkpoint-"


def rng_states() -> dict[str, Any]:
    """Global RNG states (the run's own draws are stateless, see seeding; these cover libraries)."""
    np_state = np.random.get_state()
    assert isinstance(np_state, tuple)  # the legacy format: the global RandomState is always MT19937
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2])},
        "python": json.dumps(random.getstate()),
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    key = states["numpy"]["key"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, states["numpy"]["pos"], 0, 0.0))
    version, internal, gauss = json.loads(states["python"])
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(directory: Path, step: int, state: dict[str, Any], meta: dict[str, Any], keep: int) -> Path:
    """Write ``directory/checkpoint-<step>`` atomically and prune all but the newest ``keep``."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{PREFIX}{step:07d}"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=directory))
    try:
        torch.save({**state, "rng": rng_states(), "step": step}, tmp / "state.pt")
        (tmp / "meta.json").write_text(json.dumps({**meta, "step": step}, indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: int(p.name.removeprefix(PREFIX)))


def latest_checkpoint(directory: Path) -> Path | None:
    checkpoints = list_checkpoints(directory)
    return checkpoints[-1] if checkpoints else None


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path / "state.pt", map_location="cpu", weights_only=True)
