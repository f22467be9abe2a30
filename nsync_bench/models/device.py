"""The one device resolver: a config's or a CLI option's device name to a ``torch.device``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from nsync_bench.errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; a CUDA device that is not
    there, or any other name, is a teaching error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or re.fullmatch(r"cuda:\d+", name):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available here; use cpu or auto "
                              "(--device cpu, or --set device=cpu in a run).")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) "
                              "exist here; use cuda:0 or auto.")
        return torch.device(name)
    raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N.")
