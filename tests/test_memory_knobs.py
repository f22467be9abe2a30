"""Memory knobs: gradient checkpointing leaves results unchanged; frozen text encoders take the compute dtype."""

import pytest
import torch

from nsync_bench.config.recipes import resolve_config
from nsync_bench.models.memory import text_encoder_dtype
from nsync_bench.pipeline.runner import build_training


def _train(method, data_root, tmp_path, checkpointing):
    overrides = ["train.max_steps=3", f"train.gradient_checkpointing={str(checkpointing).lower()}"]
    config = resolve_config(style="toy-ink", method=method, seed=0, profile="smoke", overrides=overrides)
    torch.set_num_threads(config.cpu_threads)
    training = build_training(config, data_root=data_root, checkpoint_dir=tmp_path / f"{method}-{checkpointing}")
    components = training.method.components
    assert components.unet.is_gradient_checkpointing == checkpointing
    assert components.text_encoder.is_gradient_checkpointing == checkpointing
    losses = [training.trainer.train_step()["train/loss"] for _ in range(2)]
    return losses, training.method.trainable_state()


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
@pytest.mark.parametrize("method", ["ti", "lora", "nsync"])
def test_gradient_checkpointing_changes_no_result(method, data_root, tmp_path):
    plain_losses, plain = _train(method, data_root, tmp_path, False)
    ckpt_losses, ckpt = _train(method, data_root, tmp_path, True)
    assert ckpt_losses == pytest.approx(plain_losses, rel=1e-6, abs=1e-7)
    assert plain.keys() == ckpt.keys()
    for key in plain:
        torch.testing.assert_close(ckpt[key], plain[key], rtol=1e-5, atol=1e-7)
    # ...and training moved them (the comparison is not between two untouched states)
    untouched = _untrained(method, data_root, tmp_path)
    assert any(not torch.equal(plain[k], untouched[k]) for k in plain)


def _untrained(method, data_root, tmp_path):
    config = resolve_config(style="toy-ink", method=method, seed=0, profile="smoke", overrides=["train.max_steps=3"])
    return build_training(config, data_root=data_root, checkpoint_dir=tmp_path / "untrained").method.trainable_state()


def test_frozen_text_encoder_takes_the_compute_dtype():
    assert text_encoder_dtype("lora", torch.float16) == torch.float16
    assert text_encoder_dtype("nsync-lora", torch.bfloat16) == torch.bfloat16
    assert text_encoder_dtype("ti", torch.float16) == torch.float32  # TI trains a row of it
    assert text_encoder_dtype("nsync", torch.float16) == torch.float32
