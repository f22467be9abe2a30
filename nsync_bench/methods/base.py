"""The interface every method implements, and the positive branch they share.

The trainer owns devices, precision, the optimizer, checkpoints and tracking; a method owns its
trainable parameters, its gradient computation and its saved adapter (open_clip's task split).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

import torch

from nsync_bench import seeding
from nsync_bench.config.run_config import RunConfig
from nsync_bench.data.styles import StyleInfo
from nsync_bench.models.components import DiffusionComponents
from nsync_bench.models.precision import Precision
from nsync_bench.training.batches import Batch, ImageSet, PositiveBatches
from nsync_bench.training.diffusion import diffusion_loss, encode_prompts

# The classic Textual Inversion style templates (Gal et al. 2022; diffusers' example).
STYLE_TEMPLATES = (
    "a painting in the style of {}",
    "a rendering in the style of {}",
    "a cropped painting in the style of {}",
    "the painting in the style of {}",
    "a clean painting in the style of {}",
    "a dirty painting in the style of {}",
    "a dark painting in the style of {}",
    "a picture in the style of {}",
    "a cool painting in the style of {}",
    "a close-up painting in the style of {}",
    "a bright painting in the style of {}",
    "a cropped painting in the style of {}",
    "a good painting in the style of {}",
    "a close-up painting in the style of {}",
    "a rendition in the style of {}",
    "a nice painting in the style of {}",
    "a small painting in the style of {}",
    "a weird painting in the style of {}",
    "a large painting in the style of {}",
)


class Method(ABC):
    """One personalization method behind the shared trainer."""

    # What the rest of the package asks about a method (negatives, training, order, baseline, cost, trigger
    # token) is its descriptor in nsync_bench.config.methods, under this name.
    name: ClassVar[str]

    def __init__(
        self,
        config: RunConfig,
        components: DiffusionComponents,
        style: StyleInfo,
        device: torch.device,
        precision: Precision,
    ) -> None:
        self.config = config
        self.components = components
        self.style = style
        self.device = device
        self.precision = precision
        self.seed = config.run.seed

    def attach_negatives(self, negatives: ImageSet, positives: PositiveBatches) -> None:
        """The run's negative set and its positive batches, given before training to a method whose descriptor
        says ``needs_negatives`` (the runner renders the set with the pristine base model first)."""
        raise NotImplementedError(f"method {self.name!r} needs negatives but does not implement attach_negatives")

    # -- what trains ---------------------------------------------------------------------------
    @abstractmethod
    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups (with their weight decay)."""

    @property
    @abstractmethod
    def token(self) -> str:
        """The string that stands for the style in prompts."""

    # -- one step ------------------------------------------------------------------------------
    def training_templates(self, n: int, micro_step: int) -> list[str]:
        """The prompt template of each of ``n`` training samples at ``micro_step``, with ``{caption}``
        and ``{token}`` fields: ``prompts.train_template`` (caption-conditioned, the released code) or
        the classic style templates drawn per sample (``prompts.mode = "templates"``).

        The one place training prompts come from: every branch that prompts with the style (NSYNC's
        positive, negative and anchor branches included) derives its prompts from these templates.
        """
        if self.config.prompts.mode == "templates":
            rng = seeding.numpy_rng(self.seed, seeding.DATA, "template", micro_step)
            picks = rng.integers(0, len(STYLE_TEMPLATES), size=n)
            return [STYLE_TEMPLATES[int(i)].format("{token}") for i in picks]
        return [self.config.prompts.train_template] * n

    def format_prompts(self, templates: list[str], captions: list[str]) -> list[str]:
        return [t.format(caption=c, token=self.token) for t, c in zip(templates, captions, strict=True)]

    def training_prompts(self, captions: list[str], micro_step: int) -> list[str]:
        """Caption-conditioned prompts (released code) or the classic style templates."""
        return self.format_prompts(self.training_templates(len(captions), micro_step), captions)

    def evaluation_prompt(self, caption: str) -> str:
        return self.config.eval.prompt_template.format(caption=caption, token=self.token)

    def branch_loss(self, batch: Batch, prompts: list[str], generator: torch.Generator) -> torch.Tensor:
        """The denoising loss of one batch under the given prompts and random stream."""
        with self.precision.autocast():
            return diffusion_loss(self.components, batch, self.encode(prompts), generator)

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Text-encoder hidden states of the prompts (methods with a frozen encoder may cache them)."""
        return encode_prompts(self.components, prompts, self.device)

    def positive_loss(self, batch: Batch, micro_step: int) -> torch.Tensor:
        """The positive branch: the same draws for every method at the same (seed, micro-step)."""
        generator = seeding.torch_generator(self.seed, seeding.NOISE, micro_step)
        return self.branch_loss(batch, self.training_prompts(batch.captions, micro_step), generator)

    def compute_gradients(self, batch: Batch, micro_step: int) -> dict[str, Any]:
        """Accumulate this micro-batch's gradient into ``.grad``; return scalars to log, as device tensors
        (the trainer copies every step's scalars to the host at once: converting one here would stall a GPU)."""
        loss = self.positive_loss(batch, micro_step)
        accumulation = self.config.train.gradient_accumulation_steps
        self.precision.scale(loss / accumulation).backward()
        return {"train/loss": loss.detach()}

    def before_optimizer_step(self) -> None:  # noqa: B027 - optional hook
        """Adjust gradients after accumulation, before the optimizer step."""

    def after_optimizer_step(self) -> None:  # noqa: B027 - optional hook
        """Repair parameters after the optimizer step."""

    def step_tensors(self) -> dict[str, torch.Tensor]:
        """Device scalars this method needs on the host after each step (they travel with the trainer's one
        transfer; :meth:`after_transfer` receives them)."""
        return {}

    def after_transfer(self, values: dict[str, float], step: int) -> None:  # noqa: B027 - optional hook
        """Act on :meth:`step_tensors`' values of optimizer step ``step`` (0-based) once they are on the host."""

    # -- gradient access for rules that combine several branches (NSYNC) -------------------------
    def rule_parameters(self) -> list[torch.Tensor]:
        """The tensors whose gradients a branch computes."""
        raise NotImplementedError(f"method {self.name!r} exposes no gradients for a rule")

    def rule_vectors(self, gradients: list[torch.Tensor]) -> list[torch.Tensor]:
        """The parts of those gradients a rule acts on (e.g. TI: the style token's row)."""
        raise NotImplementedError(f"method {self.name!r} exposes no gradients for a rule")

    def add_to_gradients(self, vectors: list[torch.Tensor]) -> None:
        """Add ``vectors`` (shaped like :meth:`rule_vectors`) into the parameters' ``.grad``."""
        raise NotImplementedError(f"method {self.name!r} exposes no gradients for a rule")

    def branch_parameters(self, sizes: list[int]) -> AbstractContextManager[list[list[torch.Tensor]]]:
        """Inside the context, samples of branch b (consecutive blocks of ``sizes``) see their own
        leaf copy of the trainables; yields, per branch, the leaves whose ``.grad`` is that branch's
        gradient (shaped like :meth:`rule_vectors`). Lets one backward pass keep branches apart."""
        raise NotImplementedError(f"method {self.name!r} has no per-branch parameters")

    @property
    def supports_branch_parameters(self) -> bool:
        return False

    # -- state and artifacts -------------------------------------------------------------------
    @abstractmethod
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Everything a checkpoint needs to restore the trained parameters exactly."""

    @abstractmethod
    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None: ...

    @abstractmethod
    def save_adapter(self, directory: Path) -> Path:
        """Write the adapter in a format diffusers loads; return the file written."""

    @abstractmethod
    def evaluation_pipeline(self) -> Any:
        """A StableDiffusionPipeline with the trained adapter applied as inference would load it."""
