"""One host transfer per training step: logs and the finiteness check travel together (training.divergence)."""

from __future__ import annotations

import pytest
import torch

from nsync_bench.config.recipes import resolve_config
from nsync_bench.perf.syncs import count_host_transfers, transfers_per_step
from nsync_bench.pipeline.runner import build_training
from nsync_bench.training.divergence import parameters_finite, to_host


def test_the_counter_counts_each_kind_of_transfer():
    t = torch.ones(3)
    with count_host_transfers() as counts:
        float(t.sum())
        t[0].item()
        bool(t.all())
        t.tolist()
        t.cpu()
    assert counts == {"__float__": 1, "item": 1, "__bool__": 1, "tolist": 1, "cpu": 1}
    float(t.sum())  # outside the block: uncounted, and the methods are restored
    assert counts == {"__float__": 1, "item": 1, "__bool__": 1, "tolist": 1, "cpu": 1}


@pytest.mark.parametrize(("method", "overrides"), [
    ("ti", []),
    ("lora", []),
    ("nsync", ["nsync.rule=code-v4.2"]),
    ("nsync-lora", ["nsync.rule=code-v4.2"]),
    ("nsync-lora", ["nsync.rule=paper", "nsync.projection_scope=per_tensor"]),  # a projection per LoRA tensor
    ("nsync", ["nsync.rule=code-v5.1", "train.gradient_accumulation_steps=2"]),
])
def test_a_training_step_makes_one_host_transfer(method, overrides, data_root, tmp_path):
    config = resolve_config(style="toy-pastel", method=method, profile="smoke",
                            overrides=[*overrides, "train.max_steps=10", "train.batch_size=2"])
    training = build_training(config, data_root=data_root, checkpoint_dir=tmp_path)
    training.trainer.train_step()  # first step: lazy state (optimizer, latent cache) outside the count
    assert transfers_per_step(training.trainer.train_step, steps=2) == 1.0
    assert training.trainer.parameters_finite


def test_the_fused_flag_sees_nan_and_inf_and_not_large_finite_values():
    finite = [torch.full((3,), 3e38), torch.zeros(2, 2)]  # a sum of these would overflow; the peak does not
    assert bool(parameters_finite(finite))
    assert not bool(parameters_finite([*finite, torch.tensor([0.0, float("nan")])]))
    assert not bool(parameters_finite([torch.tensor([-float("inf")]), *finite]))


def test_to_host_keeps_names_order_and_plain_floats():
    logs = {"a": torch.tensor(1.5), "b": 2.0, "c": torch.tensor(-3.0, dtype=torch.float64)}
    with count_host_transfers() as counts:
        host, extra = to_host(logs, {"flag": torch.tensor(True), "mask": torch.tensor(5)})
    assert sum(counts.values()) == 1
    assert list(host) == ["a", "b", "c"] and host == {"a": 1.5, "b": 2.0, "c": -3.0}
    assert extra == {"flag": 1.0, "mask": 5.0}
