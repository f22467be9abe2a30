"""``nsync-bench world build``: train the toy world's base model from scratch, resumably.

Every random draw of step ``s`` (batch, dropped caption words, noise, timesteps) comes from the
stream ``(seed, world-base, s)``, and checkpoints hold the weights, their EMA and the optimizer,
so an interrupted build continues exactly where it stopped (same thread count: CPU reductions
depend on it). The exported weights are the EMA's.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nsync_bench import seeding
from nsync_bench.progress import NullProgress, Progress
from nsync_bench.training import checkpoint as ckpt
from nsync_bench.world import model as wm
from nsync_bench.world import render as wr

logger = logging.getLogger(__name__)
LOSS_WINDOW = 50  # the manifest's final_loss_50 and the progress bar average this many recent losses


@dataclass(frozen=True)
class BuildConfig:
    seed: int = 0
    steps: int = 6000
    batch_size: int = 32
    learning_rate: float = 5e-4
    warmup_steps: int = 100
    ema_decay: float = 0.998
    images: int = 24000
    # Each attribute word is left out of a caption with this probability (the base learns to
    # compose them and what a partial description means) ...
    word_drop: float = 0.25
    # ... and the whole caption with this one (classifier-free guidance's unconditional branch).
    caption_drop: float = 0.1
    checkpoint_every: int = 250
    threads: int = 2


def dataset(config: BuildConfig) -> tuple[torch.Tensor, list[wr.Content], list[wr.WorldStyle]]:
    """The base-training images in [-1, 1] with their content and style (base styles only)."""
    rng = seeding.numpy_rng(config.seed, "world-base", "dataset")
    styles = wr.base_styles()
    contents = wr.sample_contents(rng, config.images)
    picks = [styles[int(i)] for i in rng.integers(len(styles), size=config.images)]
    chunks = []
    for start in range(0, config.images, 2000):
        stop = min(start + 2000, config.images)
        chunks.append(wr.render(contents[start:stop], picks[start:stop], seed=config.seed * 1000 + start))
    return torch.cat(chunks) * 2 - 1, contents, picks


def caption(content: wr.Content, style: wr.WorldStyle, keep: np.ndarray, drop_all: bool) -> str:
    if drop_all:
        return ""
    return f"{content.caption} {wr.style_phrase(style, tuple(bool(k) for k in keep))}"


def _ema_update(ema: dict[str, torch.Tensor], params: dict[str, torch.Tensor], step: int, decay: float) -> None:
    # Ramped decay (1+s)/(10+s) capped at ``decay``: early EMA follows the fast-changing weights.
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for name, p in params.items():
            ema[name].mul_(d).add_(p.detach(), alpha=1 - d)


class BaseTrainer:
    def __init__(self, config: BuildConfig, work_dir: Path) -> None:
        self.config = config
        self.work_dir = Path(work_dir)
        torch.set_num_threads(config.threads)
        self.components = wm.build_components(config.seed)
        self.unet, self.text = self.components.unet, self.components.text_encoder
        for module in (self.unet, self.text):
            module.requires_grad_(True)
            module.train()
        self.params = {f"unet.{k}": v for k, v in self.unet.named_parameters()}
        self.params.update({f"text.{k}": v for k, v in self.text.named_parameters()})
        self.ema = {k: v.detach().clone() for k, v in self.params.items()}
        self.optimizer = torch.optim.AdamW(list(self.params.values()), lr=config.learning_rate, weight_decay=0.01)
        self.step = 0
        # The last LOSS_WINDOW losses travel in the checkpoint, so a build resumed at its last step
        # still exports the final loss.
        self.recent_losses: deque[float] = deque(maxlen=LOSS_WINDOW)
        found = ckpt.load_latest(self.work_dir / "checkpoints", f"Delete {self.work_dir / 'checkpoints'} to build "
                                 "from scratch.")
        if found is not None:
            state = found[1]
            self.unet.load_state_dict(state["unet"])
            self.text.load_state_dict(state["text"])
            self.ema = dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.step = int(state["step"])
            self.recent_losses.extend(state.get("recent_losses", torch.zeros(0)).tolist())
            logger.info("resuming the base-model build at step %d from %s", self.step, found[0])
        self._data: tuple[torch.Tensor, list[wr.Content], list[wr.WorldStyle]] | None = None

    @property
    def data(self) -> tuple[torch.Tensor, list[wr.Content], list[wr.WorldStyle]]:
        # Rendered on first use only: exporting a finished build needs no images.
        if self._data is None:
            logger.info("rendering %d base-training images", self.config.images)
            self._data = dataset(self.config)
        return self._data

    def train_step(self) -> float:
        cfg = self.config
        gen = seeding.torch_generator(cfg.seed, "world-base", self.step)
        images, contents, styles = self.data
        idx = torch.randint(0, len(contents), (cfg.batch_size,), generator=gen)
        keep = torch.rand(cfg.batch_size, 4, generator=gen) >= cfg.word_drop
        drop_all = torch.rand(cfg.batch_size, generator=gen) < cfg.caption_drop
        prompts = [
            caption(contents[int(i)], styles[int(i)], keep[k].numpy(), bool(drop_all[k]))
            for k, i in enumerate(idx)
        ]
        x0 = images[idx]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, 1000, (cfg.batch_size,), generator=gen)
        sched = self.components.noise_scheduler
        noisy = sched.add_noise(x0, noise, t)
        target = sched.get_velocity(x0, noise, t)
        ids = self.components.tokenizer(prompts, padding="max_length", truncation=True,
                                        max_length=wm.MAX_TOKENS, return_tensors="pt").input_ids
        lr = cfg.learning_rate * min(1.0, (self.step + 1) / cfg.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        hidden = self.text(ids)[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):  # ~30% faster on avx512_bf16 CPUs
            pred = self.unet(noisy, t, hidden).sample
        loss = F.mse_loss(pred.float(), target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(self.params.values()), 1.0)
        self.optimizer.step()
        _ema_update(self.ema, self.params, self.step, cfg.ema_decay)
        self.step += 1
        self.recent_losses.append(float(loss.detach()))
        return self.recent_losses[-1]

    def save_checkpoint(self) -> None:
        state = {"unet": self.unet.state_dict(), "text": self.text.state_dict(), "ema": self.ema,
                 "optimizer": self.optimizer.state_dict(),
                 "recent_losses": torch.tensor(list(self.recent_losses), dtype=torch.float64)}
        ckpt.save_checkpoint(self.work_dir / "checkpoints", self.step, state, {"config": asdict(self.config)}, keep=1)

    def ema_components(self) -> Any:
        """A copy of the components carrying the EMA weights (frozen, eval mode)."""
        components = wm.build_components(self.config.seed)
        for prefix, module in (("unet.", components.unet), ("text.", components.text_encoder)):
            ema = {k.removeprefix(prefix): v for k, v in self.ema.items() if k.startswith(prefix)}
            # Buffers (e.g. position ids) are not trained: they keep the fresh module's values.
            missing, unexpected = module.load_state_dict(ema, strict=False)
            if unexpected or any(name in dict(module.named_parameters()) for name in missing):
                raise RuntimeError(f"EMA state does not match the model: {unexpected or missing}")
        for module in (components.unet, components.text_encoder):
            module.requires_grad_(False)
            module.eval()
        return components


def build(config: BuildConfig, work_dir: Path, out_dir: Path | None, max_minutes: float | None = None,
          progress: Progress | None = None) -> tuple[int, bool]:
    """Train until ``config.steps`` (or ``max_minutes``), checkpointing; export when done.

    Returns (steps done, finished). Rerunning the same command resumes from the last checkpoint.
    """
    progress = progress or NullProgress()
    trainer = BaseTrainer(config, work_dir)
    start, deadline = time.monotonic(), None if max_minutes is None else time.monotonic() + 60 * max_minutes
    steps_this_session = 0
    progress.start("training the toy-world base model", total=config.steps, completed=trainer.step)
    try:
        while trainer.step < config.steps:
            trainer.train_step()
            steps_this_session += 1
            progress.advance(1, loss=f"{np.mean(trainer.recent_losses):.4f}")
            if trainer.step % config.checkpoint_every == 0:
                trainer.save_checkpoint()
                logger.info("step %d loss %.4f (%.2f s/step)", trainer.step, np.mean(trainer.recent_losses),
                            (time.monotonic() - start) / steps_this_session)
            if deadline is not None and time.monotonic() > deadline:
                break
    except KeyboardInterrupt:
        trainer.save_checkpoint()
        raise
    finally:
        progress.stop()
    if steps_this_session:
        trainer.save_checkpoint()
    finished = trainer.step >= config.steps
    if out_dir is not None:
        meta = {"build": asdict(config), "steps_done": trainer.step, "finished": finished,
                "final_loss_50": float(np.mean(trainer.recent_losses)) if trainer.recent_losses else None,
                "torch": torch.__version__}
        wm.save_weights(trainer.ema_components(), out_dir, meta)
    return trainer.step, finished
