"""What the shared training loop needs of a method: the loop sits below ``methods/`` in the layers
(docs/architecture.md), so it names this structural interface instead of importing ``methods.base.Method``,
which satisfies it."""

from __future__ import annotations

from typing import Any, Protocol

import torch

from nsync_bench.models.precision import Precision
from nsync_bench.training.batches import Batch


class Trainable(Protocol):
    precision: Precision

    @property
    def name(self) -> str: ...

    def param_groups(self) -> list[dict[str, Any]]: ...

    def compute_gradients(self, batch: Batch, micro_step: int) -> dict[str, Any]: ...

    def before_optimizer_step(self) -> None: ...

    def after_optimizer_step(self) -> None: ...

    def step_tensors(self) -> dict[str, torch.Tensor]: ...

    def after_transfer(self, values: dict[str, float], step: int) -> None: ...

    def trainable_state(self) -> dict[str, torch.Tensor]: ...

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None: ...
