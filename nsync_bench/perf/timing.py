"""The one timing loop of the project's benchmarks, and its device helpers.

:func:`time_calls` runs ``fn`` ``warmup`` times untimed, then ``repeats`` times, each bracketed by
:func:`synchronize` (on CUDA, queued kernels finish inside the timer) and :func:`time.perf_counter`;
callers take the median. :func:`peak_memory_mb` is the memory figure every benchmark reports.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable


def synchronize(device: str) -> None:
    """Wait for the device's queued work (CUDA); nothing on other devices."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_calls(fn: Callable[[], object], *, warmup: int = 0, repeats: int = 1, device: str = "cpu") -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return times


def reset_peak_memory(device: str) -> None:
    """Start a new CUDA peak-memory window (the process's peak RSS cannot be reset)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb(device: str, *, cpu_rss: bool = True) -> float | None:
    """Peak CUDA memory allocated since :func:`reset_peak_memory` (MiB); elsewhere the process's peak RSS
    so far (cumulative, Linux ``ru_maxrss`` in KiB), or None when ``cpu_rss`` is false."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if cpu_rss else None
