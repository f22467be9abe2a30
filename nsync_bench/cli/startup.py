"""Garbage collection around a command's start-up and exit: the cheapest seconds of a short run.

Importing torch, diffusers, transformers and MLflow creates millions of objects, and CPython's cyclic
collector rescans all of them at every full collection during the imports, and once more while the
interpreter shuts down: about a quarter of the import time and 2-3 s at exit (measured by
``nsync-bench bench --only startup``, docs/scale.md). So a command starts with the collector off;
:func:`settle` then moves everything start-up created into the permanent generation, which later
collections skip, and turns it back on (a run calls it after its first training step; a timer does
for any command that does not); :func:`end` freezes again before exit. Reference counting frees
memory as usual throughout; only cycles created during start-up wait for the collector.
"""

from __future__ import annotations

import gc
import threading

# A command that never calls settle() gets its collector back after this long.
SETTLE_AFTER_S = 60.0


def begin() -> None:
    """Turn the cyclic collector off for start-up (with a timer that turns it back on)."""
    gc.disable()
    timer = threading.Timer(SETTLE_AFTER_S, settle)
    timer.daemon = True
    timer.start()


def settle() -> None:
    """Freeze what exists now out of future collections and turn the collector back on (idempotent)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def end() -> None:
    """Before the interpreter exits: nothing left to collect is worth a full scan of the heap."""
    gc.freeze()
