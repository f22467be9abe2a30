"""Adding a method is one module, one registry row and one descriptor row: a dummy method added that way runs
end to end on the smoke profile and shows up, unasked, in the report's order and pairs, the dry run's cost
ratios, the model card and the data identity (docs/extending.md)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import FAST

from nsync_bench.config import methods as method_table
from nsync_bench.config.methods import MethodInfo, default_pairs, method_order
from nsync_bench.methods import METHODS
from nsync_bench.methods.textual_inversion import TextualInversion


class Echo(TextualInversion):
    """A new method for the test: Textual Inversion under another name, reading the ``ti`` config section."""

    name = "echo"


@pytest.fixture
def echo(monkeypatch):
    # The two rows a new method adds: its code by "module:Class", and its descriptor.
    monkeypatch.setitem(METHODS, "echo", f"{__name__}:Echo")
    monkeypatch.setitem(method_table.METHOD_INFO, "echo", MethodInfo("echo", baseline="ti", cost_vs_ti=1.5))
    return "echo"


def test_the_descriptor_is_read_everywhere_without_a_run(echo):
    from nsync_bench.report.plots import method_order as plot_order
    from nsync_bench.sweep.plan import ratios_to_ti

    assert method_order({"echo", "nsync", "ldm", "zz"}) == ["ldm", "nsync", "echo", "zz"]
    assert plot_order(["echo", "ti"]) == ["ti", "echo"]
    assert ("echo", "ti") in default_pairs()
    assert ratios_to_ti()["echo"] == 1.5


def test_every_method_has_code_and_a_descriptor():
    assert set(METHODS) == set(method_table.METHOD_INFO)
    for info in method_table.METHOD_INFO.values():
        assert info.baseline is None or info.baseline in method_table.METHOD_INFO
        assert info.trains == (info.cost_vs_ti is not None), info.name  # the dry run prices what trains


@pytest.mark.slow  # four smoke runs and a report
def test_a_new_method_runs_end_to_end_and_is_reported(echo, run_options, tmp_path):
    from nsync_bench.pipeline.runner import run
    from nsync_bench.report.build import build_report

    results = {(method, seed): run(style="toy-pastel", method=method, seed=seed, overrides=FAST, options=run_options)
               for method in ("ti", "echo") for seed in (0, 1)}
    echo_run = results[("echo", 0)]
    assert not echo_run.skipped and echo_run.run_key != results[("ti", 0)].run_key
    card = (echo_run.run_dir / "adapter" / "README.md").read_text()
    assert "nsync-bench-echo" in card and "textual_inversion" in card
    record = json.loads((echo_run.run_dir / "config.json").read_text())
    assert "negatives" not in record["data_identity"]  # its descriptor says it needs none

    report = build_report(["test"], tracking_uri=run_options.tracking_uri, out_dir=tmp_path / "report",
                          log_to_mlflow=False)
    comparisons = pd.read_csv(report.comparisons_csv)
    pairs = set(zip(comparisons["candidate"], comparisons["baseline"], strict=True))
    assert ("echo", "ti") in pairs  # paired against its declared baseline, unasked
    summary = pd.read_csv(report.summary_csv)
    assert {"ti", "echo"} <= set(summary["method"])
