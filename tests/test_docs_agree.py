"""docs/scale.md's figures are the code's: the dry-run example, the ratios, the nominal rates, the check's estimate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nsync_bench.checks.gpu import VARIANTS, estimate_seconds
from nsync_bench.cli.main import app
from nsync_bench.config.recipes import resolve_config
from nsync_bench.sweep.plan import NOMINAL_IMAGE_S, ratios_to_ti

DOCS = Path(__file__).resolve().parents[1] / "docs"
COMMAND = "$ nsync-bench sweep --file paper --dry-run --step-time 0.35"


def _scale() -> str:
    return (DOCS / "scale.md").read_text(encoding="utf-8")


def _example_block() -> list[str]:
    text = _scale()
    start = text.index(COMMAND) + len(COMMAND)
    return [line for line in text[start:text.index("```", start)].strip().splitlines() if line]


def test_the_dry_run_example_is_what_the_code_prints(tmp_path, monkeypatch):
    from nsync_bench.cli.app import console

    monkeypatch.setattr(console, "width", 400)  # made once per process: no line of the summary may wrap
    monkeypatch.setenv("NSYNC_BENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("NSYNC_BENCH_DATA_ROOT", str(tmp_path / "data"))  # no data: the documented assumption
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    result = CliRunner().invoke(app, COMMAND.removeprefix("$ nsync-bench ").split(), env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    printed = {line.strip() for line in result.output.splitlines()}
    expected = _example_block()
    assert len(expected) == 3
    for line in expected:
        assert line in printed, (line, result.output[-1500:])


def test_the_ratio_table_is_the_cost_models():
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| [^|]+\| [^|]+\| ([0-9.]+) \|$", _scale(), flags=re.M))
    assert {name: float(rows[name]) for name in ratios_to_ti()} == ratios_to_ti()


def test_nominal_rates_and_the_checks_estimate_are_stated_as_the_code_has_them():
    text = _scale()
    assert f"{NOMINAL_IMAGE_S} s per\nimage at 50 steps" in text or f"{NOMINAL_IMAGE_S} s per image at 50 steps" in text
    cold = estimate_seconds(list(VARIANTS), 2, 5, 8, snapshot_cached=False)
    warm = estimate_seconds(list(VARIANTS), 2, 5, 8, snapshot_cached=True)
    assert f"{cold:.0f} s with the snapshot still to build, {warm:.0f} s once it is cached" in text


@pytest.mark.parametrize("profile", ["sd15", "sd2"])
def test_the_curve_subset_docs_state_is_the_profiles(profile):
    config = resolve_config(style="toy-pastel", method="ti", profile=profile)
    running = (DOCS / "running.md").read_text(encoding="utf-8")
    assert f"`eval.curve_prompts = {config.eval.curve_prompts}`" in running
    assert config.eval.at_steps == [1000, 2000, 3000, 4000, 5000, 6000, 7000]  # "its 7 curve steps"
