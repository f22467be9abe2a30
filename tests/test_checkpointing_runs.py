"""Gradient checkpointing actually runs for TI, NSYNC and LoRA: checkpointed blocks are recomputed.

With checkpointing a block's activations are dropped after the forward pass and recomputed in the
backward pass, so the block's forward runs twice per training pass; without it, once. The UNet stays in
mode the method leaves it in, which for diffusers before 0.32 had to be train mode for checkpointing to
run; the project's floor (diffusers >= 0.34) is where ``nox -s tests_lowest`` runs this.
"""

from __future__ import annotations

import pytest

from nsync_bench.config.recipes import resolve_config
from nsync_bench.pipeline.runner import build_training


def _forward_calls(method, checkpointing, data_root, tmp_path):
    overrides = ["train.max_steps=3", "train.batch_size=2",
                 f"train.gradient_checkpointing={str(checkpointing).lower()}"]
    config = resolve_config(style="toy-ink", method=method, seed=0, profile="smoke", overrides=overrides)
    training = build_training(config, data_root=data_root, checkpoint_dir=tmp_path / f"{method}-{checkpointing}")
    components = training.method.components
    training.trainer.train_step()  # first step: latent cache and lazy state outside the count
    # On the gradient's path for every method: the mid block's last resnet (after its cross-attention, through
    # which TI's gradient enters and where LoRA's parameters sit; diffusers checkpoints a UNet's resnets, and
    # one whose output needs no gradient is never recomputed) and the text encoder's first layer.
    # A submodule of each is counted (transformers 5 checkpoints inside a layer's class-level forward).
    encoder = getattr(components.text_encoder, "text_model", components.text_encoder).encoder
    blocks = {"unet": components.unet.mid_block.resnets[-1].conv1, "text": encoder.layers[0].mlp}
    counts = dict.fromkeys(blocks, 0)
    for name, module in blocks.items():  # count forward() itself: torch runs no forward hooks when recomputing

        def counted(*args, _name=name, _forward=module.forward, **kwargs):
            counts[_name] += 1
            return _forward(*args, **kwargs)

        module.forward = counted
    try:
        training.trainer.train_step()
    finally:
        for module in blocks.values():
            del module.forward
    return counts, components.unet.training


@pytest.mark.parametrize("method", ["ti", "nsync", "lora", "nsync-lora"])
def test_checkpointed_blocks_are_recomputed_in_the_backward_pass(method, data_root, tmp_path):
    plain, _ = _forward_calls(method, False, data_root, tmp_path)
    checkpointed, _ = _forward_calls(method, True, data_root, tmp_path)
    assert plain["unet"] >= 1
    assert checkpointed["unet"] == 2 * plain["unet"], (method, plain, checkpointed)
    if method in ("ti", "nsync"):  # TI trains a row of the text encoder: its layers are checkpointed too
        assert checkpointed["text"] == 2 * plain["text"]
    else:  # LoRA encodes its prompts once, without gradients: nothing to recompute there
        assert checkpointed["text"] == plain["text"]
