"""Mixed precision: half-precision frozen weights and autocast on CUDA, plain fp32 elsewhere."""

from __future__ import annotations

import contextlib
import logging

import torch

log = logging.getLogger(__name__)

_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Precision:
    """Owns autocast and (for fp16) the gradient scaler.

    Trainable parameters stay fp32 (diffusers' ``cast_training_params`` practice); frozen
    modules are cast to :attr:`weight_dtype`. On CPU the mode falls back to fp32: CPU autocast
    is slow and changes numerics, and the smoke profile must be bit-reproducible.
    """

    def __init__(self, mode: str, device: torch.device, scaler: torch.amp.GradScaler | None = None) -> None:
        if mode != "no" and device.type != "cuda":
            log.info("mixed precision %r needs CUDA; training in fp32 on %s", mode, device)
            mode = "no"
        self.mode = mode
        self.device = device
        self.weight_dtype = _DTYPES[mode]
        # ``scaler`` replaces the fp16 default, e.g. an enabled CPU scaler that lets tests exercise
        # the loss-scaling path (skipped steps, scale back-off) without a GPU.
        self.scaler = scaler if scaler is not None else torch.amp.GradScaler("cuda", enabled=mode == "fp16")

    @property
    def loss_scaling(self) -> bool:
        """True when gradients carry a loss scale (fp16): an inf/NaN step is skipped and the scale backed off."""
        return self.scaler.is_enabled()

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.mode == "no":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.weight_dtype)

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return self.scaler.scale(loss)

    def loss_scale(self) -> torch.Tensor | float:
        """The current loss scale without a host transfer: the scaler's own device tensor (``get_scale()``
        would copy it to the host); 1.0 without loss scaling."""
        if not self.loss_scaling:
            return 1.0
        scale = getattr(self.scaler, "_scale", None)  # set by the first scale(); private, so fall back
        return scale if isinstance(scale, torch.Tensor) else self.scaler.get_scale()

    def step(self, optimizer: torch.optim.Optimizer, max_grad_norm: float | None) -> None:
        """Unscale, clip (optional), step; fp16 steps with inf/NaN grads are skipped by the scaler."""
        self.scaler.unscale_(optimizer)
        if max_grad_norm is not None:
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.scaler.load_state_dict(state)
