"""Checkpoints: trainable state, optimizer, scaler and RNG states at a step, written atomically.

A checkpoint is a folder ``checkpoint-<step>`` holding ``state.pt`` (tensors and plain
containers only, so it loads with ``torch.load(weights_only=True)``) and ``meta.json`` with the
sha256 of ``state.pt``. It is serialised in memory first (so a full disk is reported with the exact
space needed before anything is written), written into a temporary sibling and renamed into place,
so a crash never leaves a half-written checkpoint that looks complete. Resuming verifies the sha256;
a checkpoint that fails is set aside (``.bad-checkpoint-<step>``) and the previous one is used, and
when none is left the error names the files and ``--restart``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nsync_bench.errors import CorruptFileError
from nsync_bench.io import atomic_dir, read_json, require_space

log = logging.getLogger(__name__)

PREFIX = "checkpoint-"
BAD_PREFIX = ".bad-checkpoint-"


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
    buffer = io.BytesIO()
    torch.save({**state, "rng": rng_states(), "step": step}, buffer)
    data = buffer.getbuffer()
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{PREFIX}{step:07d}"
    require_space(directory, len(data) + (1 << 16), f"{final.name}/state.pt")  # the older one stays until then
    with atomic_dir(final) as tmp:
        (tmp / "state.pt").write_bytes(data)
        record = {**meta, "step": step, "sha256": hashlib.sha256(data).hexdigest()}
        (tmp / "meta.json").write_text(json.dumps(record, indent=2))
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
    """The state in ``path``, verified against the sha256 in its ``meta.json`` (older checkpoints carry
    none); a torn, truncated or altered checkpoint is a :class:`CorruptFileError` naming the file."""
    meta = read_json(path / "meta.json", "the checkpoint record", "")
    data = (path / "state.pt").read_bytes()
    expected = meta.get("sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise CorruptFileError(f"checkpoint {path / 'state.pt'} does not match the sha256 recorded when it was "
                               "written (torn, truncated or altered since)")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, pickle and zip errors for a damaged file
        raise CorruptFileError(f"checkpoint {path / 'state.pt'} does not load ({type(err).__name__})") from None


def load_latest(directory: Path, restart_hint: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``directory`` that verifies, with its state; None when there is none.

    When the previous one is used, a bad newer one is renamed ``.bad-checkpoint-<step>`` (kept for
    inspection); when every checkpoint is bad they stay where they are and the error names them and
    ``restart_hint`` (how to start over), so a plain rerun does not silently start from step 0."""
    bad: list[Path] = []
    for path in reversed(list_checkpoints(directory)):
        try:
            state = load_checkpoint(path)
        except (CorruptFileError, OSError) as err:
            bad.append(path)
            log.warning("%s; trying the previous checkpoint", err)
            continue
        for damaged in bad:
            aside = damaged.with_name(BAD_PREFIX + damaged.name.removeprefix(PREFIX))
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(damaged, aside)
            log.warning("set the damaged %s aside as %s; resuming from %s", damaged.name, aside.name, path.name)
        return path, state
    if bad:
        names = ", ".join(str(p / "state.pt") for p in bad)
        raise CorruptFileError(f"no usable checkpoint to resume from in {directory}: {names} failed verification "
                               f"(torn, truncated or altered) and no older one is kept. {restart_hint}")
    return None
