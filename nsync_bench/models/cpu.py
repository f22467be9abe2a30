"""CPU facts that decide how a run uses the processor: native bf16, and the cores a process may use."""

from __future__ import annotations

import contextlib
import logging
import os
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

# CPU flags (Linux /proc/cpuinfo) of a native bf16 dot product: AVX-512 BF16 (Zen 4, Cooper Lake and
# later Xeons) or AMX (Sapphire Rapids and later). Without them bf16 is emulated, and slower than fp32.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@cache
def native_bf16() -> bool | None:
    """True when the CPU advertises a native bf16 instruction, False when it does not, None when unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags = {word for line in text.splitlines() if line.startswith("flags") for word in line.split()}
    return any(flag in flags for flag in BF16_FLAGS)


def bf16_autocast() -> contextlib.AbstractContextManager:
    """bf16 autocast on the CPU (matmuls and convolutions in bf16, reductions in fp32); warns once
    where the CPU has no native bf16, since it then runs slower than fp32 (the result is the same)."""
    if native_bf16() is False:
        _warn_emulated()
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)


@cache
def _warn_emulated() -> None:
    log.warning("eval.cpu_precision = bf16, but this CPU has no native bf16 (%s): sampling runs slower "
                "than in fp32. Set --set eval.cpu_precision=fp32 for speed (the images then differ).",
                " or ".join(BF16_FLAGS))


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
