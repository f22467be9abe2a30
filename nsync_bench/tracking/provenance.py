"""Provenance of a result: code version, libraries, hardware (lm-evaluation-harness style)."""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

_LIBRARIES = ("nsync-bench", "torch", "torchvision", "diffusers", "transformers", "peft", "accelerate",
              "mlflow", "numpy", "scipy", "clean-fid", "open_clip_torch")


@cache
def git_sha() -> str:
    """The commit of the nsync-bench checkout (``+dirty`` with uncommitted changes), or ``unknown``."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries results depend on (read once per process: ~0.1 s)."""
    return dict(_library_versions())


@cache
def _library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def hardware(device: str) -> dict[str, str]:
    info = {"python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(),
            "device": device}
    if device.startswith("cuda"):
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
    return info
