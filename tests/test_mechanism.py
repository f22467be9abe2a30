"""nsync_bench.world.mechanism: the premise test, curve windows and labels in closed form."""

from __future__ import annotations

import math

import pytest

from nsync_bench.errors import ConfigError
from nsync_bench.world.mechanism import RunRecord, arm_label, nuisance_reference, premise, window_medians


def test_window_medians_take_first_middle_and_last_windows():
    values = list(range(1000))
    assert window_medians(values, window=100) == (49.5, 499.5, 949.5)
    assert window_medians([3.0, float("nan"), 1.0], window=100) == (2.0, 2.0, 2.0)  # non-finite steps dropped
    assert all(math.isnan(x) for x in window_medians([]))


def test_arm_labels_name_a_rule_only_where_it_is_not_the_papers():
    assert arm_label({"run.method": "ti", "nsync.rule": "paper"}) == "ti"
    assert arm_label({"run.method": "nsync", "nsync.rule": "paper"}) == "nsync"
    assert arm_label({"run.method": "nsync", "nsync.rule": "code-v4.2"}) == "nsync (code-v4.2)"
    assert arm_label({"run.method": "nsync-lora", "nsync.rule": "code-v5.1"}) == "nsync-lora (code-v5.1)"


def test_the_premise_compares_leakage_with_the_real_images_share():
    assert nuisance_reference("world-linen") == pytest.approx(1 / 3)  # three backgrounds, spread evenly
    with pytest.raises(ConfigError, match="no nuisance"):
        nuisance_reference("world-dusk")
    leaks = [0.9, 0.95, 1.0, 0.8, 0.85, 0.9]
    records = [RunRecord("ti", s, {"leakage": v}) for s, v in enumerate(leaks)]
    records.append(RunRecord("nsync", 0, {"leakage": 0.1}))  # another arm: not counted
    found = premise(records, "world-linen")
    assert (found.n, found.wins) == (6, 6)
    assert found.mean_excess == pytest.approx(sum(leaks) / 6 - 1 / 3)
    assert found.p_exact == pytest.approx(2 / 2**6)  # all six differences one sign: the exact test's floor
    assert found.p_t < 1e-4
    assert premise(records[:1], "world-linen") is None  # one seed: no test
