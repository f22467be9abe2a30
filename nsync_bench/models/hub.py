"""Offline-aware loading of Hugging Face models from a hub id or a local directory.

The benchmark usually runs offline against a pre-filled cache, so every "the files are not
there" failure becomes the caller's teaching error: ``on_missing(local, reason)`` builds it from
whether the model was a local directory and a short reason, and the loader raises it. Imports
nothing heavy (``huggingface_hub`` only inside functions), so CLI help stays fast.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OnMissing = Callable[[bool, str], Exception]
"""``on_missing(local, reason)`` -> the caller's teaching error, raised by the loaders here."""

PATH_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")
"""A model reference starting like this names a directory, never a hub id."""

_TRUE = {"1", "true", "yes"}


def is_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for the cache only (no download)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def load_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the files are not there" (hub errors are OSErrors in recent hubs)."""
    from huggingface_hub import errors as hub_errors

    names = ("EntryNotFoundError", "LocalEntryNotFoundError", "HfHubHTTPError", "OfflineModeIsEnabled")
    return (OSError, *(getattr(hub_errors, n) for n in names if hasattr(hub_errors, n)))


def first_line(err: BaseException) -> str:
    """``Type: first line of the message``, at most 300 characters."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def model_key(model: str) -> str:
    """A model reference as it enters a ``model_id``: local directories absolute, hub ids as given."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model


def resolve_source(
    model: str, on_missing: OnMissing, *, offline: bool | None = None, **hub_kwargs: Any
) -> tuple[str, bool, dict[str, Any]]:
    """``(target, local, from_pretrained kwargs)`` for a local directory or a hub id.

    A directory loads as is; a hub id gets ``hub_kwargs`` and ``local_files_only`` when offline
    (``offline`` or, when None, ``HF_HUB_OFFLINE``), so a missing model fails in milliseconds.
    A path-like reference to no directory raises ``on_missing(True, "no such directory")``.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path), True, {}
    if model.startswith(PATH_PREFIXES):
        raise on_missing(True, "no such directory")
    return model, False, {**hub_kwargs, "local_files_only": is_offline() if offline is None else offline}


def load_hf(kind: str, model: str, loaders: Sequence[Callable[..., Any]], on_missing: OnMissing,
            revision: str | None = None) -> list[Any]:
    """Run ``loader(target, **kwargs)`` for each loader (see :func:`resolve_source`); one result each.

    ``kind`` names the model in the log; ``revision`` pins a hub id's commit (ignored for a directory).
    A failure to find the files raises ``on_missing(local, reason)`` with the first sentence of the error
    as the reason.
    """
    from huggingface_hub.errors import HFValidationError

    hub_kwargs: dict[str, Any] = {"revision": revision} if revision else {}
    target, local, kwargs = resolve_source(model, on_missing, **hub_kwargs)
    log.info("loading %s model %s (%s)", kind, target, "local" if local else "hub")
    try:
        return [loader(target, **kwargs) for loader in loaders]
    except HFValidationError as err:
        raise on_missing(False, f"neither a directory nor a valid hub id: {err}") from err
    except load_errors() as err:
        reason = first_line(err).split(". ")[0].rstrip(".")  # hub messages ramble after the first sentence
        raise on_missing(local, reason) from err
