"""The training loop shared by every method.

The trainer owns the optimizer, gradient accumulation, precision, checkpoints, step metrics and
progress; the method owns what trains and how its gradient is computed (nsync_bench.methods.base).

A step makes one host transfer: methods return their logged scalars as device tensors, and the trainer
copies them to the host together with the trained tensors' fused finiteness flag and the method's own
per-step scalars (training.divergence.to_host), so a GPU is not stalled once per logged number or tensor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nsync_bench import seeding
from nsync_bench.config.run_config import RunConfig
from nsync_bench.progress import NullProgress, Progress
from nsync_bench.tracking.tracker import NullTracker, Tracker, TrackingError
from nsync_bench.training import checkpoint as ckpt
from nsync_bench.training.batches import PositiveBatches
from nsync_bench.training.trainable import Trainable

log = logging.getLogger(__name__)

StepCallback = Callable[[int], None]


def effective_learning_rate(config: RunConfig, processes: int = 1) -> float:
    """Released code (``scale_lr``): base lr x batch size x accumulation steps x processes."""
    train = config.train
    if not train.scale_lr:
        return train.learning_rate
    return train.learning_rate * train.batch_size * train.gradient_accumulation_steps * processes


class Trainer:
    def __init__(
        self,
        config: RunConfig,
        method: Trainable,
        batches: PositiveBatches,
        checkpoint_dir: Path,
        tracker: Tracker | None = None,
        progress: Progress | None = None,
        callbacks: list[StepCallback] | None = None,
    ) -> None:
        self.config = config
        self.method = method
        self.batches = batches
        self.checkpoint_dir = checkpoint_dir
        self.tracker = tracker or NullTracker()
        self.progress = progress or NullProgress()
        self.callbacks = list(callbacks or [])
        train = config.train
        self.learning_rate = effective_learning_rate(config)
        self.optimizer = torch.optim.AdamW(
            method.param_groups(),
            lr=self.learning_rate,
            betas=(train.adam_beta1, train.adam_beta2),
            eps=train.adam_epsilon,
        )
        self.step = 0  # optimizer steps completed
        self._updating = False  # True between optimizer.step() and the method's repair
        self.parameters_finite = True  # after each step: whether every trained tensor is finite

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        state = {
            "method": self.method.trainable_state(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.method.precision.state_dict(),
        }
        meta = {"method": self.method.name, "learning_rate": self.learning_rate}
        path = ckpt.save_checkpoint(self.checkpoint_dir, self.step, state, meta, self.config.train.checkpoints_keep)
        log.info("checkpoint at step %d: %s", self.step, path)
        return path

    def resume(self) -> int:
        """Load the newest checkpoint, if any; return the step training continues from."""
        found = ckpt.load_latest(self.checkpoint_dir, "Start the run over with the same `nsync-bench run` command "
                                 f"plus --restart (or delete {self.checkpoint_dir} and run it again).")
        if found is None:
            return 0
        path, state = found
        self.method.load_trainable_state(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.method.precision.load_state_dict(state["scaler"])
        ckpt.restore_rng_states(state["rng"])
        self.step = int(state["step"])
        log.info("resumed from %s (step %d)", path, self.step)
        return self.step

    # -- the loop ------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """One optimizer step over ``gradient_accumulation_steps`` micro-batches; its logs, on the host."""
        from nsync_bench.training.divergence import parameters_finite, to_host, trained_parameters

        train = self.config.train
        accumulation = train.gradient_accumulation_steps
        # 1. Library-internal randomness (e.g. dropout) is a function of the step too.
        torch.manual_seed(seeding.derive_seed(self.config.run.seed, seeding.GLOBAL, self.step))
        # 2. Accumulate each micro-batch's gradient; the method decides how it is computed (its logs
        #    stay on the device).
        totals: dict[str, Any] = {}
        for micro in range(accumulation):
            micro_step = self.step * accumulation + micro
            logs = self.method.compute_gradients(self.batches.batch(micro_step), micro_step)
            for key, value in logs.items():
                totals[key] = totals[key] + value / accumulation if key in totals else value / accumulation
        # 3. Let the method adjust the accumulated gradient, then step and repair.
        self.method.before_optimizer_step()
        self._updating = True
        self.method.precision.step(self.optimizer, train.max_grad_norm)
        self.optimizer.zero_grad(set_to_none=True)
        self.method.after_optimizer_step()
        self._updating = False
        self.step += 1
        # 4. One host transfer: the logs, the trained tensors' finiteness and the method's step scalars.
        extra = {"parameters_finite": parameters_finite(trained_parameters(self.optimizer)),
                 **self.method.step_tensors()}
        host, flags = to_host(totals, extra)
        self.parameters_finite = bool(flags.pop("parameters_finite"))
        self.method.after_transfer(flags, self.step - 1)
        return host

    def fit(self) -> None:
        """Train from :attr:`step` to ``train.max_steps``; on Ctrl-C (or a dead tracking server), checkpoint and
        re-raise."""
        from nsync_bench.training.divergence import DivergenceGuard, trained_parameters

        train = self.config.train
        guard = DivergenceGuard(self.method.precision.mode, self.learning_rate)
        self.progress.start(f"training {self.method.name}", total=train.max_steps, completed=self.step)
        try:
            while self.step < train.max_steps:
                started = time.perf_counter()
                logs = self.train_step()
                # before anything is saved; the finiteness came with the step's one host transfer
                guard.check(self.step, logs, trained_parameters(self.optimizer), finite=self.parameters_finite)
                logs["train/step_time"] = time.perf_counter() - started
                logs["train/lr"] = self.learning_rate
                if self.step % train.log_every == 0 or self.step == train.max_steps:
                    self.tracker.log_metrics(logs, step=self.step)
                self.progress.advance(1, loss=logs.get("train/loss", float("nan")))
                if self.step % train.checkpoint_every == 0 and self.step < train.max_steps:
                    self.save_checkpoint()
                for callback in self.callbacks:
                    callback(self.step)
        except (KeyboardInterrupt, TrackingError) as stop:  # Ctrl-C, SIGTERM, a dead tracking server: resumable
            if not self._updating and self.step > 0:
                log.warning("%s at step %d; saving a checkpoint to resume from",
                            "interrupted" if isinstance(stop, KeyboardInterrupt) else "tracking failed", self.step)
                self.save_checkpoint()
            raise
        finally:
            self.tracker.flush()
            self.progress.stop()
