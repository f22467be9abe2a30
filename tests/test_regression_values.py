"""Frozen numbers: a library upgrade (torch, diffusers, transformers) that changes results must show here.

Every other test compares two computations made with the same libraries, so both sides move
together when an upgrade changes the numbers (a new weight initialisation, noise schedule,
attention kernel or optimizer detail). This one compares against values recorded once:

    3 smoke steps of Textual Inversion on toy-pastel, seed 0, the FAST overrides, matched protocol
    (batch 4, AdamW, lr 5e-4 x 4 = 2e-3), recorded with torch 2.14.1, diffusers 0.42.1 and
    transformers 5.24.0 on an x86-64 CPU, 1 thread.

If it fails after an upgrade, find out why the numbers moved before re-recording them (and say
why in the commit); if it fails without one, something in the training path changed.
"""

import pytest
from conftest import FAST

from nsync_bench.config.recipes import resolve_config
from nsync_bench.pipeline.runner import build_training

# train/loss of steps 0, 1, 2. Step 0's loss depends only on the tiny models' seeded initialisation,
# the data, the VAE and the noise/timestep draws; steps 1 and 2 also on the first updates.
LOSSES = (1.1751328706741333, 1.2018990516662598, 1.156528115272522)
# The learned placeholder row (32 float32 values) after 3 steps: its first four values and the
# norm of its change from the initializer's row.
ROW_HEAD = (0.01798100583255291, 0.0010707754408940673, -0.005917969159781933, 0.008688855916261673)
DELTA_NORM = 0.02784702465838999

# Tolerances, from the float32 arithmetic:
# - Nothing here is random beyond the seeded streams, so on one machine and one library set the
#   values are bit-identical (tests/test_textual_inversion.py). What legitimately differs between
#   machines is the order of float32 reductions (BLAS/oneDNN kernels, SIMD width, thread count).
#   Reordering a float32 sum changes it by a few ulps (eps = 1.2e-7 relative). The loss is a mean
#   of order 1, so it moves by ~1e-7: we allow rel 1e-5.
# - The row moves by three AdamW steps of size ~lr = 2e-3 per element. Adam divides the first
#   moment by the root of the second, so a relative change r in the gradients changes each step by
#   ~r * lr; r ~ 1e-6 from reordering gives ~2e-9 per step, and the row's own rounding is one ulp
#   of values below 0.035, ~4e-9. Measured: running with 2 threads instead of 1 moves the row by at
#   most 8.4e-9 and leaves the losses unchanged to all printed digits. We allow 1e-6 absolute,
#   over 100x that.
# - A real change is far larger: a different draw, loss weighting, schedule or optimizer setting
#   changes the row by ~1e-4 to 1e-3 (a fraction of one step), and a gradient change of 1e-3
#   relative already moves it by ~6e-6 over three steps. Both fail these tolerances.
LOSS_REL = 1e-5
ROW_ABS = 1e-6


def test_textual_inversion_after_three_smoke_steps_matches_the_recorded_values(data_root, tmp_path):
    config = resolve_config(style="toy-pastel", method="ti", seed=0, profile="smoke", overrides=FAST)
    training = build_training(config, data_root=data_root, checkpoint_dir=tmp_path / "ckpt")
    method = training.method
    initial = method.learned_embedding().clone()
    losses = [training.trainer.train_step()["train/loss"] for _ in range(3)]
    row = method.learned_embedding()
    assert row.shape == (1, 32)
    assert losses == pytest.approx(LOSSES, rel=LOSS_REL)
    assert row.flatten()[:4].tolist() == pytest.approx(ROW_HEAD, abs=ROW_ABS)
    assert float((row - initial).double().norm()) == pytest.approx(DELTA_NORM, abs=ROW_ABS)
