"""Counting host transfers: the places a CUDA program waits for the GPU to hand a value to Python.

On a GPU every ``.item()``, ``float(t)``, ``int(t)``, ``bool(t)`` (``if t:``), ``.cpu()``, ``.tolist()`` and
``.numpy()`` of a device tensor blocks until the GPU has caught up: a training step with hundreds of them
runs at the speed of the round trips, not of the kernels. :func:`count_host_transfers` counts those calls
by patching them on ``torch.Tensor`` for the duration of a block; on a CPU it counts the calls a GPU run
would sync on (a CPU tensor's conversion costs nothing, but it is the same line of code). Calls made
inside ``torch.optim`` are left out: an optimizer's step counters live on the CPU by design (``.item()``
of them never waits for a GPU). ``nsync-bench bench --only training`` reports them per training step.
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

KINDS = ("item", "__float__", "__int__", "__bool__", "cpu", "tolist", "numpy")
OPTIMIZER_FILES = "torch/optim/"


@contextlib.contextmanager
def count_host_transfers() -> Iterator[Counter]:
    """Count host transfers of tensors inside the block, by kind (the Counter fills as the block runs)."""
    import torch

    counts: Counter = Counter()
    originals = {kind: getattr(torch.Tensor, kind) for kind in KINDS}

    def counting(kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            caller = sys._getframe(1).f_code.co_filename
            if OPTIMIZER_FILES not in caller.replace("\\", "/"):
                counts[kind] += 1
            return original(self, *args, **kwargs)

        return wrapper

    for kind, original in originals.items():
        setattr(torch.Tensor, kind, counting(kind, original))
    try:
        yield counts
    finally:
        for kind, original in originals.items():
            setattr(torch.Tensor, kind, original)


def transfers_per_step(step: Callable[[], object], steps: int = 3) -> float:
    """Mean host transfers per call of ``step`` (a trainer's whole step: gradients, update, checks, logs)."""
    with count_host_transfers() as counts:
        for _ in range(steps):
            step()
    return sum(counts.values()) / steps
