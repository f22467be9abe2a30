"""Divergence: a run whose loss or trained parameters stop being finite ends as FAILED.

Checked after every optimizer step. Trained parameters that are NaN or infinite end the run at
once: AdamW's state is poisoned and nothing recovers. A non-finite *loss* with finite parameters
is tolerated only under fp16 loss scaling, for at most :data:`FP16_TOLERATED_STEPS` consecutive
steps: there, an overflow makes the gradient scaler skip the step and halve its scale (from 2^16,
so 16 halvings reach a scale of 1), which is normal at the start of training; more in a row means
the model itself overflows. In fp32 and bf16 the first non-finite loss ends the run.
"""

from __future__ import annotations

import math

import torch

from nsync_bench.errors import NsyncBenchError

FP16_TOLERATED_STEPS = 16
LOSS_KEYS = ("train/loss", "train/loss_pos", "train/loss_neg")


class DivergenceError(NsyncBenchError):
    """Training produced a non-finite loss or adapter; the run is FAILED, not finished."""

    exit_code = 1  # the run failed (the CLI's usage errors exit 2)


class DivergenceGuard:
    def __init__(self, precision_mode: str, learning_rate: float) -> None:
        self.tolerated = FP16_TOLERATED_STEPS if precision_mode == "fp16" else 0
        self.learning_rate = learning_rate
        self.consecutive = 0

    def _advice(self) -> str:
        return (f"Try a lower learning rate (effective lr was {self.learning_rate:g}; --set train.learning_rate=...), "
                "gradient clipping (--set train.max_grad_norm=1.0), or fp32 (--set model.mixed_precision=no). "
                "Nothing was cached: the run is FAILED and a rerun recomputes it.")

    def check(self, step: int, logs: dict[str, float], parameters: list[torch.Tensor]) -> None:
        """Raise :class:`DivergenceError` if step ``step`` diverged (see the module docstring)."""
        bad = [p for p in parameters if not bool(torch.isfinite(p.detach()).all())]
        if bad:
            raise DivergenceError(
                f"the run diverged: the trained parameters are not finite after step {step} "
                f"({sum(int((~torch.isfinite(p.detach())).sum()) for p in bad)} non-finite values). "
                + self._advice())
        losses = {k: logs[k] for k in LOSS_KEYS if k in logs and not math.isfinite(logs[k])}
        if not losses:
            self.consecutive = 0
            return
        self.consecutive += 1
        if self.consecutive > self.tolerated:
            detail = ", ".join(f"{k} = {v}" for k, v in losses.items())
            tolerance = (f" for {self.consecutive} consecutive steps (fp16 loss scaling tolerates {self.tolerated})"
                         if self.tolerated else "")
            raise DivergenceError(f"the run diverged: {detail} at step {step}{tolerance}. " + self._advice())


def trained_parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]
