"""What base model a run used, exactly: the resolved hub revision, or a digest of a local folder's files.

A hub id alone names whatever its ``main`` branch holds today, so two runs with the same config could
train on different weights. Profiles therefore pin a revision (``model.revision``, overridable with
``--set model.revision=...``), and a run's key and MLflow params carry the model's identity:

* a hub id: the commit its revision resolves to (a pinned 40-hex commit as is; a branch or tag through
  the local Hugging Face cache, or the hub when online);
* a local folder: a sha256 over its weight and config files (name and content), so editing or swapping
  a file changes the key while moving the folder does not.

Only ``model.source = "pretrained"`` has one: the tiny and toy-world models are built from the config or
ship sha256-checked, so their run keys are unchanged by this.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from nsync_bench.models.hub import is_offline

log = logging.getLogger(__name__)

COMMIT = re.compile(r"[0-9a-f]{40}")
# What a diffusers folder's loading reads: weights and the JSON/text files that shape them.
IDENTITY_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".pt", ".ckpt")


def is_commit(revision: str | None) -> bool:
    return bool(revision and COMMIT.fullmatch(revision))


def cached_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit ``revision`` (default ``main``) points at in the local Hugging Face cache, if recorded there."""
    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    ref = folder / "refs" / (revision or "main")
    try:
        commit = ref.read_text().strip()
    except OSError:
        return None
    return commit if is_commit(commit) else None


@cache
def _hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit of ``revision`` asked from the hub (online only; one call per process and model)."""
    try:
        from huggingface_hub import HfApi

        return HfApi().model_info(repo_id, revision=revision).sha
    except Exception as err:  # offline, unknown repo, no network: the plan reports it unresolved
        log.debug("could not resolve %s@%s on the hub: %s", repo_id, revision, err)
        return None


def resolve_revision(repo_id: str, revision: str | None) -> str | None:
    """The commit a hub model's ``revision`` names: itself when pinned, else the cache's record, else
    (online) the hub's answer; None when it cannot be known here."""
    if is_commit(revision):
        return revision
    commit = cached_commit(repo_id, revision)
    if commit is None and not is_offline():
        commit = _hub_commit(repo_id, revision)
    return commit


def identity_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in IDENTITY_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def folder_digest(folder: Path, digest: Callable[[Path], str] | None = None) -> str:
    """sha256 over sorted (relative path, content sha256) of the folder's model files. ``digest`` hashes
    one file (the data identity passes its cache keyed by path, size and mtime: a 4 GB folder is hashed once)."""
    from nsync_bench.io import file_sha256

    digest = digest or file_sha256
    entries = [[p.relative_to(folder).as_posix(), digest(p)] for p in identity_files(folder)]
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def model_identity(model: Any, digest: Callable[[Path], str] | None = None) -> dict[str, Any] | None:
    """``{"name", "source", "revision" | "weights"}`` of a pretrained base model (``model``: a
    :class:`~nsync_bench.config.run_config.ModelConfig`); None for built-in models.

    ``source`` (where it lies) stays out of the run key; ``revision`` is the resolved commit (or, when
    it cannot be resolved here, the revision as written with ``"resolved": False``).
    """
    if model.source != "pretrained" or not model.pretrained:
        return None
    path = Path(model.pretrained).expanduser()
    if path.is_dir():
        folder = path.resolve()
        return {"name": folder.name, "source": str(folder), "weights": folder_digest(folder, digest)}
    commit = resolve_revision(model.pretrained, model.revision)
    identity: dict[str, Any] = {"name": model.pretrained, "source": "hub",
                                "revision": commit or model.revision or "main"}
    if commit is None:
        identity["resolved"] = False
    return identity
