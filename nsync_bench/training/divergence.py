"""Divergence: a run whose loss or trained parameters stop being finite ends as FAILED.

Checked after every optimizer step. Trained parameters that are NaN or infinite end the run at
once: AdamW's state is poisoned and nothing recovers. A non-finite *loss* with finite parameters
is tolerated only under fp16 loss scaling, for at most :data:`FP16_TOLERATED_STEPS` consecutive
steps: there, an overflow makes the gradient scaler skip the step and halve its scale (from 2^16,
so 16 halvings reach a scale of 1), which is normal at the start of training; more in a row means
the model itself overflows. In fp32 and bf16 the first non-finite loss ends the run.

The check costs one host transfer per step: the trainer stacks the step's logged scalars and one fused
finiteness flag of all trained tensors (:func:`parameters_finite`, computed on the device) and copies them
to the host together (:func:`to_host`); the guard then reads plain floats. Counting the non-finite values
for the error message costs more transfers, but only once, when the run fails.
"""

from __future__ import annotations

import math
from typing import Any

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

    def check(self, step: int, logs: dict[str, float], parameters: list[torch.Tensor],
              finite: bool | None = None) -> None:
        """Raise :class:`DivergenceError` if step ``step`` diverged (see the module docstring).

        ``finite``: whether every trained tensor is finite, when the caller already has it on the host
        (the trainer's one transfer per step); None computes it here from ``parameters``.
        """
        if finite is None:
            finite = bool(parameters_finite(parameters))
        if not finite:
            count = sum(int((~torch.isfinite(p.detach())).sum()) for p in parameters)  # once, as the run fails
            raise DivergenceError(
                f"the run diverged: the trained parameters are not finite after step {step} "
                f"({count} non-finite values). " + self._advice())
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


def parameters_finite(parameters: list[torch.Tensor]) -> torch.Tensor:
    """A 0-dim bool tensor on the parameters' device: all of them finite. No host transfer: the largest
    absolute value of each tensor (NaN and inf propagate through it, no overflow as a sum could) in one stack."""
    peaks = torch.stack([p.detach().abs().amax().float() for p in parameters])
    return torch.isfinite(peaks).all()


def to_host(values: dict[str, Any], extra: dict[str, torch.Tensor]) -> tuple[dict[str, float], dict[str, float]]:
    """``values`` (device scalars or floats) and ``extra`` (device scalars) as floats, with one host transfer."""
    names = [k for k, v in values.items() if torch.is_tensor(v)]
    tensors = [values[k] for k in names] + list(extra.values())
    floats: list[float] = []
    if tensors:
        device = tensors[0].device
        floats = torch.stack([t.detach().reshape(()).to(device=device, dtype=torch.float64) for t in tensors]).tolist()
    fetched = dict(zip(names, floats, strict=False))
    host = {k: fetched[k] if k in fetched else float(v) for k, v in values.items()}
    return host, dict(zip(extra, floats[len(names):], strict=True))
