"""Adding a metric is one module declaring a ``SPEC`` and one row in ``metrics/plugins.toml``: a dummy metric added
that way is accepted by the config, scored, reported with its label and direction, drawn in the plots and priced
by the sweep's dry run, with nothing else touched (docs/extending.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import FAST

from nsync_bench.config import plugins
from nsync_bench.config.run_config import MetricsConfig
from nsync_bench.metrics.spec import MetricScore, MetricSpec


def _mean_gap(generated: np.ndarray, real: np.ndarray, config: MetricsConfig) -> MetricScore:
    """Distance between the two sets' mean features: crude, but a real function of both sets."""
    value = float(np.linalg.norm(generated.mean(axis=0) - real.mean(axis=0)))
    return MetricScore(value, None, len(generated), len(real))


MEAN_GAP = MetricSpec(name="meangap", direction="lower", extractor="clip", label="Mean gap",
                      estimator_id=lambda config: "mean-gap-l2", score=_mean_gap)


@pytest.fixture
def meangap(monkeypatch):
    # The one row a new metric adds (its module is this test module).
    monkeypatch.setitem(plugins.plugin_table().setdefault("metrics", {}), "meangap", f"{__name__}:MEAN_GAP")
    return "meangap"


def test_the_config_accepts_a_registered_metric_only_once_registered(monkeypatch):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown metric 'meangap'"):
        MetricsConfig(names=["meangap"])
    monkeypatch.setitem(plugins.plugin_table()["metrics"], "meangap", f"{__name__}:MEAN_GAP")
    assert MetricsConfig(names=["csd", "meangap"]).names == ["csd", "meangap"]


def test_scoring_computes_it_from_its_extractor_kind(meangap, tmp_path):
    from helpers import write_images

    from nsync_bench.metrics.images import list_image_files
    from nsync_bench.metrics.scoring import score_image_sets

    gen = list_image_files(write_images(tmp_path / "gen", 6, 0, sizes=((16, 16),)))
    real = list_image_files(write_images(tmp_path / "real", 5, 1, sizes=((16, 16),)))
    report = score_image_sets(gen, real, MetricsConfig(names=["cmmd", "meangap"], extractors="smoke", device="cpu"))
    result = report.results["meangap"]
    assert result.direction == "lower" and result.implementation.startswith("mean-gap-l2|")
    assert result.value > 0 and np.isfinite(result.value)
    # the same CLIP features CMMD reads: same extractor id after the "|"
    assert result.implementation.split("|")[1] == report.results["cmmd"].implementation.split("|")[1]


def test_the_dry_run_prices_its_extractor(meangap, tmp_path):
    from nsync_bench.sweep.matrix import SweepOptions, SweepSpec
    from nsync_bench.sweep.plan import StepTimes, plan_sweep

    options = SweepOptions(runs_dir=str(tmp_path / "runs"), data_root=str(tmp_path / "data"),
                           tracking_uri=f"sqlite:///{tmp_path / 'absent.db'}")
    times = StepTimes(1.0, extractor_images_per_s={"clip": 2.0, "inception": 1e9, "csd": 1e9})
    spec = SweepSpec(styles=["toy-ink"], methods=["ti"], seeds=[0],
                     overrides=[*FAST, 'metrics.names=["meangap"]'])
    run = plan_sweep(spec, options, times).runs[0]
    images = 2  # eval.max_prompts in FAST
    assert run.score_s == pytest.approx(images / 2.0)  # one CLIP pass, nothing else


def test_the_plots_and_tables_label_it_from_its_spec(meangap, monkeypatch):
    from matplotlib.axes import Axes

    from nsync_bench.report.plots import curve_labels, metric_figure
    from nsync_bench.report.render import metric_header

    assert metric_header("meangap", "lower") == "Mean gap ↓"
    assert curve_labels()["curve/meangap"] == "Mean gap ↓ vs step"
    titles: list[str] = []
    original = Axes.set_title
    monkeypatch.setattr(Axes, "set_title", lambda self, text, *a, **k: (titles.append(text), original(
        self, text, *a, **k))[1])
    summary = pd.DataFrame([{"profile": "smoke", "protocol": "matched", "style": "toy-ink", "method": m,
                             "metric": metric, "direction": "lower", "mean": 1.0, "ci_low": 0.5, "ci_high": 1.5,
                             "n": 2, "best": False} for m in ("ti", "nsync") for metric in ("meangap", "fid")])
    metric_figure(summary)
    assert titles[:2] == ["FID  (↓ lower is better)", "Mean gap  (↓ lower is better)"]  # registry order


@pytest.mark.slow  # four smoke runs and a report
def test_a_new_metric_runs_end_to_end_and_is_reported(meangap, run_options, tmp_path):
    from nsync_bench.pipeline.runner import run
    from nsync_bench.report.build import build_report

    overrides = [*FAST, 'metrics.names=["csd", "meangap"]']
    for method in ("ti", "nsync"):
        for seed in (0, 1):
            result = run(style="toy-pastel", method=method, seed=seed, overrides=overrides, options=run_options)
            assert np.isfinite(result.metrics["metrics/meangap"])
    report = build_report(["test"], tracking_uri=run_options.tracking_uri, out_dir=tmp_path / "report",
                          log_to_mlflow=False)
    summary = pd.read_csv(report.summary_csv)
    assert set(summary["metric"]) == {"csd", "meangap"}
    assert set(summary.loc[summary["metric"] == "meangap", "direction"]) == {"lower"}
    comparisons = pd.read_csv(report.comparisons_csv)
    assert "meangap" in set(comparisons["metric"])
    assert "Mean gap ↓" in report.markdown.read_text()
