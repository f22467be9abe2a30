"""The toy world's base-model build (`nsync-bench world build`) on a tiny budget: a build stopped and
resumed ends bit-identical to one run straight through (the shipped weights' reproducibility rests on
it), and exporting a build resumed at its last step still records the final loss."""

from __future__ import annotations

import json
from dataclasses import replace

from nsync_bench.world.train import BuildConfig, build

# 4 steps of batch 4 from 64 renders, one thread (CPU reductions depend on the thread count).
TINY = BuildConfig(steps=4, batch_size=4, images=64, warmup_steps=2, checkpoint_every=2, threads=1)


def _manifest(directory):
    return json.loads((directory / "manifest.json").read_text())


def test_a_resumed_build_is_bit_identical_to_a_straight_one(tmp_path):
    assert build(TINY, tmp_path / "straight", tmp_path / "straight-out") == (4, True)
    assert build(replace(TINY, steps=2), tmp_path / "resumed", None) == (2, True)  # stop halfway
    assert build(TINY, tmp_path / "resumed", tmp_path / "resumed-out") == (4, True)  # resume to the end
    straight, resumed = _manifest(tmp_path / "straight-out"), _manifest(tmp_path / "resumed-out")
    assert straight["sha256"] == resumed["sha256"]
    assert straight["final_loss_50"] == resumed["final_loss_50"] > 0


def test_exporting_a_finished_build_keeps_its_final_loss(tmp_path):
    build(TINY, tmp_path / "work", tmp_path / "first")
    # Nothing left to train: the export runs from the checkpoint alone.
    assert build(TINY, tmp_path / "work", tmp_path / "again") == (4, True)
    first, again = _manifest(tmp_path / "first"), _manifest(tmp_path / "again")
    assert again["final_loss_50"] == first["final_loss_50"] is not None
    assert again["sha256"] == first["sha256"]
