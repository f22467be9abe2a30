"""NSYNC (arXiv 2511.01517): a negative synthetic branch and a gradient rule on top of TI or LoRA.

Per step, with a = the positive gradient (real style images), b = the negative gradient (the base
model's generic rendering of the same captions), c = an anchor gradient (a random positive image)
and the projection P(u, w) = (u.w / w.w) w over the flattened vectors:

=============  =================================  =======================================================
rule           update                             source
=============  =================================  =======================================================
``paper``      a - P(a, b)                        the abstract: keep a's component orthogonal to b
``code-v4.1``  a - P(a, a+b)                      released code; its b is a+b (grads never zeroed)
``code-v4.2``  a + P(a, a) - P(a, a+b)            released default; anchor pass run, its gradient unused
``code-v5.0``  (a + (a+b)) / 2                    negatives prompted "... not in the style of S*"
``code-v5.1``  (a + (a+b+c) + (a+b)) / 3          same prompts, anchor used
=============  =================================  =======================================================

Prompts come from one place, the base method's training templates (``prompts.mode``,
``prompts.train_template``): the negative branch prompts each synthetic twin with its positive's
template, and the v5.x rules negate its style phrase ("in the style of S*" -> "not in the style of S*").

(``docs/method.md`` §2, ``docs/fidelity.md`` §2.1.) A direction with w.w <= eps is degenerate: its
projection is skipped (P = 0) and the event is counted. A non-finite branch gradient is not
degenerate but an overflow: under fp16 loss scaling the whole step is skipped and the scale backed
off (``nsync/overflow_skips``), as for any fp16 step.

Every decision of a step is taken on the device (``torch.where``, counters as tensors): a step makes no
host transfer of its own; its logs and its overflow flag reach the host with the trainer's one transfer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

import torch

from nsync_bench import seeding
from nsync_bench.config.run_config import DEFAULT_EPS
from nsync_bench.errors import ConfigError, TrainingError, unknown_name
from nsync_bench.methods.base import Method
from nsync_bench.methods.lora import Lora
from nsync_bench.methods.textual_inversion import TextualInversion
from nsync_bench.training.batches import Batch, ImageSet, PositiveBatches, make_batch
from nsync_bench.training.diffusion import branch_losses, draw

log = logging.getLogger(__name__)

# The phrase that names the style in a training template; the v5.x rules negate it for the negatives.
STYLE_PHRASE = "in the style of {token}"
NOT_STYLE_PHRASE = "not in the style of {token}"


@dataclass(frozen=True)
class Rule:
    name: str
    formula: str
    uses_anchor: bool
    # The negatives are prompted with their positive's prompt (v4.x, paper), or with it negated:
    # "... in the style of S*" -> "... not in the style of S*" (v5.x).
    negates_style: bool


RULES: dict[str, Rule] = {
    "paper": Rule("paper", "a - P(a, b)", False, False),
    "code-v4.1": Rule("code-v4.1", "a - P(a, a+b)", False, False),
    "code-v4.2": Rule("code-v4.2", "a + P(a, a) - P(a, a+b)", False, False),
    "code-v5.0": Rule("code-v5.0", "(a + (a+b)) / 2", False, True),
    "code-v5.1": Rule("code-v5.1", "(a + (a+b+c) + (a+b)) / 3", True, True),
}


def negated_template(template: str) -> str:
    """``template`` with its style phrase negated: "{caption} in the style of {token}" ->
    "{caption} not in the style of {token}" (the released code's v5.x negative prompts)."""
    if STYLE_PHRASE not in template:
        raise ConfigError(
            f"prompts.train_template = {template!r} has no {STYLE_PHRASE!r}, which the NSYNC rules code-v5.0 "
            f"and code-v5.1 negate for the negative branch ({NOT_STYLE_PHRASE!r}). Fix: name the style that "
            "way in the template, or use another nsync.rule.")
    head, _, tail = template.rpartition(STYLE_PHRASE)
    return f"{head}{NOT_STYLE_PHRASE}{tail}"

def get_rule(name: str) -> Rule:
    if name not in RULES:
        raise unknown_name("rule", name, RULES)
    return RULES[name]


def _projection(u: torch.Tensor, w: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """P(u, w) = (u.w / w.w) w on flat float64 vectors, and whether w is degenerate (then P = 0): both on
    the device, decided by ``torch.where`` (no host transfer)."""
    ww = torch.dot(w, w)
    degenerate = ~torch.isfinite(ww) | (ww <= eps)
    coefficient = torch.dot(u, w) / torch.where(degenerate, torch.ones_like(ww), ww)
    return torch.where(degenerate, torch.zeros_like(u), coefficient * w), degenerate


def refine_gradient_tensors(
    g_pos: torch.Tensor,
    g_neg: torch.Tensor,
    g_anchor: torch.Tensor | None = None,
    *,
    rule: str,
    eps: float = DEFAULT_EPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`refine_gradient` plus the number of degenerate (skipped) projections as a device tensor."""
    spec = get_rule(rule)
    if g_neg.shape != g_pos.shape:
        raise ValueError(f"g_neg has shape {tuple(g_neg.shape)}, g_pos {tuple(g_pos.shape)}")
    if spec.uses_anchor and g_anchor is None:
        raise ValueError(f"rule {rule!r} ({spec.formula}) needs g_anchor")
    a, b = g_pos.detach().double().flatten(), g_neg.detach().double().flatten()
    degenerate = torch.zeros((), dtype=torch.long, device=a.device)
    if rule == "paper":
        p_ab, skip = _projection(a, b, eps)
        update, degenerate = a - p_ab, skip.long()
    elif rule == "code-v4.1":
        p, skip = _projection(a, a + b, eps)
        update, degenerate = a - p, skip.long()
    elif rule == "code-v4.2":
        p_aa, skip_aa = _projection(a, a, eps)
        p_as, skip_as = _projection(a, a + b, eps)
        update, degenerate = a + p_aa - p_as, skip_aa.long() + skip_as.long()
    elif rule == "code-v5.0":
        update = (a + (a + b)) / 2
    else:  # code-v5.1
        assert g_anchor is not None  # uses_anchor: checked above
        c = g_anchor.detach().double().flatten()
        update = (a + (a + b + c) + (a + b)) / 3
    return update.reshape(g_pos.shape).to(g_pos.dtype), degenerate


def refine_gradient_with_info(
    g_pos: torch.Tensor,
    g_neg: torch.Tensor,
    g_anchor: torch.Tensor | None = None,
    *,
    rule: str,
    eps: float = DEFAULT_EPS,
) -> tuple[torch.Tensor, int]:
    """:func:`refine_gradient` plus the number of degenerate (skipped) projections."""
    update, degenerate = refine_gradient_tensors(g_pos, g_neg, g_anchor, rule=rule, eps=eps)
    return update, int(degenerate)


def refine_gradient(
    g_pos: torch.Tensor,
    g_neg: torch.Tensor,
    g_anchor: torch.Tensor | None = None,
    *,
    rule: str,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """Combine NSYNC's branch gradients with ``rule`` (see the module table); same shape as ``g_pos``."""
    return refine_gradient_tensors(g_pos, g_neg, g_anchor, rule=rule, eps=eps)[0]


def _cosine(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """cos(u, w), 0 where either is zero: a device scalar."""
    denominator = u.norm() * w.norm()
    return torch.where(denominator > 0, torch.dot(u, w) / torch.where(denominator > 0, denominator, 1.0), 0.0)


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, 0 for a zero denominator (a zero positive gradient: nothing to compare): a
    device scalar."""
    return torch.where(denominator > 0, numerator / torch.where(denominator > 0, denominator, 1.0), 0.0)


def _all_finite(vectors: list[torch.Tensor]) -> torch.Tensor:
    """A 0-dim bool tensor: every vector finite (one fused reduction, no host transfer)."""
    return torch.isfinite(torch.stack([v.detach().abs().amax().float() for v in vectors])).all()


class NsyncMixin(Method):
    """Adds NSYNC's negative (and anchor) branch and gradient rule to a base method (listed first:
    ``class NsyncLora(NsyncMixin, Lora)``; Method comes after the base method in the MRO).

    The positive branch is the base method's, with the same draws (stream ``noise``); the
    negative branch uses the paired synthetic image of each positive (same caption; the same
    flip, or an independent one with ``nsync.negative_flip = "independent"``) with its own noise
    stream, so adding it never shifts the positive draws.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rule = get_rule(self.config.nsync.rule)
        if self.rule.negates_style and self.config.prompts.mode == "caption":
            negated_template(self.config.prompts.train_template)  # refused now, not at the first step
        self.negative_images: ImageSet | None = None
        self.positive_batches: Any = None
        # Device counters (read as ints through the properties; a step never transfers them on its own):
        # micro-batches with a degenerate projection, and optimizer steps skipped because a branch
        # gradient overflowed (fp16). ``_nonfinite``: this step's overflowing branches as a bit mask.
        self._degenerate = torch.zeros((), dtype=torch.long, device=self.device)
        self._overflows = torch.zeros((), dtype=torch.long, device=self.device)
        self._nonfinite = torch.zeros((), dtype=torch.long, device=self.device)
        self.last_gradients: dict[str, torch.Tensor] = {}

    @property
    def degenerate_steps(self) -> int:
        return int(self._degenerate)

    @property
    def overflow_skips(self) -> int:
        return int(self._overflows)

    def attach_negatives(self, negatives: ImageSet, positives: PositiveBatches) -> None:
        self.negative_images = negatives
        self.positive_batches = positives

    def negative_prompts(self, captions: list[str], micro_step: int = 0) -> list[str]:
        """The negative branch's prompts: its positives' templates (``prompts.mode``,
        ``prompts.train_template``; under ``templates`` the same picks), negated for the v5.x rules."""
        templates = self.training_templates(len(captions), micro_step)
        if self.rule.negates_style:
            templates = [negated_template(t) for t in templates]
        return self.format_prompts(templates, captions)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        # super(): the base method's (TI or LoRA: NsyncMixin precedes it in the MRO), never Method's abstract one
        base = super().trainable_state()  # type: ignore[safe-super]
        return {**base, "nsync_degenerate_steps": self._degenerate.detach().cpu().clone(),
                "nsync_overflow_skips": self._overflows.detach().cpu().clone()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        self._degenerate.fill_(int(state.pop("nsync_degenerate_steps", 0)))
        self._overflows.fill_(int(state.pop("nsync_overflow_skips", 0)))
        super().load_trainable_state(state)  # type: ignore[safe-super]  # the base method's, as above

    def _unscale(self, vectors: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.precision.loss_scaling:
            scale = self.precision.loss_scale()
            return [v.detach() / scale for v in vectors]
        return [v.detach() for v in vectors]

    def negative_flips(self, batch: Batch, micro_step: int) -> list[bool]:
        """The negatives' flips: the positives' own ("paired"), or drawn apart ("independent", as released)."""
        if self.config.nsync.negative_flip == "paired":
            return list(batch.flips)
        # A stream of its own, so the positive draws stay those of the baseline at the same seed.
        draws = seeding.numpy_rng(self.seed, seeding.NEGATIVE_NOISE, "flip", micro_step).random(len(batch.flips))
        assert self.negative_images is not None  # compute_gradients checks it first
        return [bool(d < self.negative_images.data.flip_p) for d in draws]

    def _anchor_batch(self, micro_step: int) -> Batch:
        batches = self.positive_batches
        rng = seeding.numpy_rng(self.seed, seeding.ANCHOR, micro_step)
        indices = [int(i) for i in rng.integers(0, len(batches.images), size=batches.batch_size)]
        flips = [bool(d < batches.images.data.flip_p) for d in rng.random(batches.batch_size)]
        return make_batch(batches.images, indices, flips, [batches.captions[i] for i in indices])

    def _branches(self, batch: Batch, micro_step: int) -> list[tuple[Batch, list[str], torch.Generator]]:
        """(batch, prompts, random stream) of each branch: positive, negative, and the anchor if run."""
        # 1. Positive branch: the base method's prompts and draws (stream "noise").
        branches = [(batch, self.training_prompts(batch.captions, micro_step),
                     seeding.torch_generator(self.seed, seeding.NOISE, micro_step))]
        # 2. Negative branch: each positive's synthetic twin, same caption, own noise stream.
        assert self.negative_images is not None  # compute_gradients checks it first
        negative = make_batch(self.negative_images, batch.indices, self.negative_flips(batch, micro_step),
                              batch.captions)
        branches.append((negative, self.negative_prompts(batch.captions, micro_step),
                         seeding.torch_generator(self.seed, seeding.NEGATIVE_NOISE, micro_step)))
        # 3. Anchor branch: random positives with their own captions, for rules that use it (or
        #    always, to reproduce the released code's cost).
        if self.rule.uses_anchor or self.config.nsync.run_anchor == "always":
            anchor = self._anchor_batch(micro_step)
            branches.append((anchor, self.training_prompts(anchor.captions, micro_step),
                             seeding.torch_generator(self.seed, seeding.ANCHOR, micro_step)))
        return branches

    def _separate_passes(self, branches: list) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """One forward and backward per branch (the released code's structure, without its bug of
        never zeroing gradients between the passes)."""
        losses, gradients = [], []
        for branch_batch, prompts, generator in branches:
            loss = self.branch_loss(branch_batch, prompts, generator)
            grads = torch.autograd.grad(self.precision.scale(loss), self.rule_parameters())
            losses.append(loss.detach())
            gradients.append(self._unscale(self.rule_vectors(list(grads))))
        return losses, gradients

    def _fused_pass(self, branches: list) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """All branches through the text encoder and UNet as one batch, one backward pass; each branch
        sees its own leaf copy of the trainables, so the gradients stay separated exactly."""
        draws = [draw(self.components, b, g) for b, _, g in branches]  # the same draws as separate passes
        prompts = [p for _, branch_prompts, _ in branches for p in branch_prompts]
        sizes = [len(b.captions) for b, _, _ in branches]
        with self.branch_parameters(sizes) as leaves:
            with self.precision.autocast():
                losses = branch_losses(self.components, draws, self.encode(prompts))
            self.precision.scale(torch.stack(losses).sum()).backward()
            # Every leaf took part in the backward pass just above, so each has its gradient.
            gradients = [self._unscale(self.rule_vectors(cast(list[torch.Tensor], [leaf.grad for leaf in branch])))
                         for branch in leaves]
        return [loss.detach() for loss in losses], gradients

    def compute_gradients(self, batch: Batch, micro_step: int) -> dict[str, Any]:
        if self.negative_images is None:
            raise RuntimeError("NSYNC needs its negative set: call attach_negatives() first")
        if micro_step % self.config.train.gradient_accumulation_steps == 0:
            self._nonfinite.zero_()  # a new optimizer step
        branches = self._branches(batch, micro_step)
        fused = self.config.nsync.fused and self.supports_branch_parameters
        losses, gradients = self._fused_pass(branches) if fused else self._separate_passes(branches)
        # Only branches the rule consumes: an anchor pass run just for cost (code-v4.2) cannot overflow the update.
        used = gradients[: 3 if self.rule.uses_anchor else 2]
        finite = [_all_finite(branch) for branch in used]
        for bit, ok in enumerate(finite):
            self._nonfinite |= (~ok).long() << bit
        all_finite = torch.stack(finite).all()
        a, b = gradients[0], gradients[1]
        c = gradients[2] if self.rule.uses_anchor else [None] * len(a)
        # 4. Combine with the rule, over all trainables at once or tensor by tensor.
        updates, degenerate = self._refine(a, b, c)
        # An overflow (a non-finite branch gradient) must not reach the rule's result: an inf only in b or c
        # would make a projection "degenerate" and leave a finite update (2a under code-v4.2). The gradient is
        # made NaN instead, so the GradScaler skips the step and backs the scale off, exactly as for an
        # overflow in the baseline's single pass (without loss scaling, after_transfer raises).
        updates = [torch.where(all_finite, u, torch.full_like(u, float("nan"))) for u in updates]
        self._degenerate += ((degenerate > 0) & all_finite).long()
        accumulation = self.config.train.gradient_accumulation_steps
        scale = self.precision.loss_scale()
        self.add_to_gradients([u * (scale / accumulation) for u in updates])
        flat_a, flat_b, flat_u = (torch.cat([v.flatten().double() for v in vs]) for vs in (a, b, updates))
        self.last_gradients = {"pos": flat_a, "neg": flat_b, "update": flat_u}
        overflow_skips = self._overflows + (self._nonfinite > 0).long()  # this step counted already
        return {
            "train/loss": losses[0],
            "train/loss_pos": losses[0],
            "train/loss_neg": losses[1],
            "grad/norm_pos": flat_a.norm(),
            "grad/norm_neg": flat_b.norm(),
            "grad/cos_pos_neg": _cosine(flat_a, flat_b),
            # |b|/|a|: how strongly the negative branch pulls compared with the positive one.
            "grad/norm_ratio_neg_pos": _ratio(flat_b.norm(), flat_a.norm()),
            "grad/norm_update": flat_u.norm(),
            "nsync/degenerate_steps": self._degenerate.double(),
            "nsync/overflow_skips": overflow_skips.double(),
        }

    def after_optimizer_step(self) -> None:
        super().after_optimizer_step()
        self._overflows += (self._nonfinite > 0).long()  # steps, not accumulated micro-batches

    def step_tensors(self) -> dict[str, torch.Tensor]:
        return {**super().step_tensors(), "nsync_nonfinite": self._nonfinite}

    def after_transfer(self, values: dict[str, float], step: int) -> None:
        """Without a loss scale a non-finite branch gradient cannot be skipped: the run fails, naming the branch."""
        super().after_transfer(values, step)
        mask = int(values.get("nsync_nonfinite", 0))
        if not mask:
            return
        branches = [name for bit, name in enumerate(("positive", "negative", "anchor")) if mask >> bit & 1]
        if not self.precision.loss_scaling:
            raise TrainingError(
                f"NSYNC's {' and '.join(branches)} gradient is not finite at step {step} with "
                f"model.mixed_precision={self.precision.mode!r}: there is no loss scale to back off, so the step "
                "cannot be skipped safely. Lower train.learning_rate, or check the negative set "
                "(nsync.negatives_dir) for broken images.")
        log.info("step %d: non-finite %s gradient; step skipped and loss scale backed off", step,
                 " and ".join(branches))

    def _refine(self, a: list[torch.Tensor], b: list[torch.Tensor], c: list[Any]
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        nsync = self.config.nsync
        if nsync.projection_scope == "per_tensor" or len(a) == 1:
            results = [refine_gradient_tensors(x, y, z, rule=nsync.rule, eps=nsync.eps)
                       for x, y, z in zip(a, b, c, strict=True)]
            return [r[0] for r in results], torch.stack([r[1] for r in results]).sum()
        flat_a, flat_b = (torch.cat([v.flatten() for v in vs]) for vs in (a, b))
        flat_c = torch.cat([v.flatten() for v in c]) if c[0] is not None else None
        update, degenerate = refine_gradient_tensors(flat_a, flat_b, flat_c, rule=nsync.rule, eps=nsync.eps)
        pieces, offset = [], 0
        for v in a:
            pieces.append(update[offset : offset + v.numel()].reshape(v.shape))
            offset += v.numel()
        return pieces, degenerate


class NsyncTextualInversion(NsyncMixin, TextualInversion):
    """NSYNC on Textual Inversion (the paper's main method): the rule acts on the style token's row."""

    name = "nsync"


class NsyncLora(NsyncMixin, Lora):
    """NSYNC on LoRA: the rule acts on all LoRA parameters (``nsync.projection_scope``)."""

    name = "nsync-lora"
