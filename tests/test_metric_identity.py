"""Each metric declares its identity in its own module (``SPEC``); the registry only lists them.

The estimator id is the part of ``metric.<name>.implementation`` before ``|extractor``; the report
refuses to compare numbers whose ids differ, so the id must follow the code that computes them.
"""

import numpy as np
import pytest
from helpers import write_images
from mlflow.tracking import MlflowClient

from nsync_bench.config.run_config import MetricsConfig
from nsync_bench.metrics import cmmd, csd, fid, kid
from nsync_bench.metrics.images import list_image_files
from nsync_bench.metrics.registry import directions, extractor_kinds, metric_labels, specs
from nsync_bench.metrics.scoring import MetricResult, ScoreReport, score_image_sets
from nsync_bench.paths import artifact_root
from nsync_bench.pipeline.evaluation import log_scores
from nsync_bench.tracking import schema

SMOKE = MetricsConfig(extractors="smoke", device="cpu", batch_size=16)
LEGACY = MetricsConfig(inception_mode="nsync-legacy")

# What the estimator ids have been since the first runs: existing MLflow stores carry these strings.
FROZEN_IDS = {
    ("clean", "fid"): "fid(inception_mode=clean)",
    ("clean", "kid"): "kid-mmd2u-cubic(subsets=100,max_size=1000,seed=0,inception_mode=clean)",
    ("clean", "cmmd"): "cmmd-rbf(sigma=10,scale=1000,biased)",
    ("clean", "csd"): "csd-cos-to-mean-real",
    ("legacy_pytorch", "fid"): "fid(inception_mode=legacy_pytorch)",
    ("legacy_pytorch", "kid"): "kid-mmd2u-cubic(subsets=100,max_size=1000,seed=0,inception_mode=legacy_pytorch)",
    ("nsync-legacy", "fid"): "fid-bootstrap(n=10,seed=0,inception_mode=nsync-legacy,legacy_batch=50)",
    ("nsync-legacy", "kid"): "kid-mmd2u-cubic(subsets=100,max_size=1000,seed=0,inception_mode=nsync-legacy,"
                             "legacy_batch=50)",
    ("nsync-legacy", "cmmd"): "cmmd-rbf(sigma=10,scale=1000,biased)",
    ("nsync-legacy", "csd"): "csd-cos-to-mean-real",
}


@pytest.fixture(scope="module")
def image_sets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("identity")
    gen = list_image_files(write_images(tmp / "gen", 12, 0, sizes=((16, 16),)))
    real = list_image_files(write_images(tmp / "real", 11, 1, sizes=((16, 16),)))
    return gen, real


def _estimator(result: MetricResult) -> str:
    return result.implementation.split("|")[0]


SPECS = specs()


def test_every_metric_is_declared_once_by_its_module():
    assert list(SPECS.values()) == [fid.SPEC, kid.SPEC, cmmd.SPEC, csd.SPEC]
    assert list(SPECS) == ["fid", "kid", "cmmd", "csd"] == MetricsConfig().names
    assert directions() == {"fid": "lower", "kid": "lower", "cmmd": "lower", "csd": "higher"}
    assert extractor_kinds(["csd", "kid", "fid"]) == ["inception", "csd"]
    assert metric_labels() == {"fid": "FID", "kid": "KID", "cmmd": "CMMD", "csd": "CSD"}


def test_config_validates_metric_names_against_the_registry():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"unknown metric 'cmd'.*Did you mean 'cmmd'"):
        MetricsConfig(names=["fid", "cmd"])
    with pytest.raises(ValidationError, match=r"named twice: \['csd'\]"):
        MetricsConfig(names=["csd", "fid", "csd"])
    assert MetricsConfig(names=[]).names == []  # generate, score nothing (the GPU check's timing runs)


@pytest.mark.parametrize(("mode", "name"), sorted(FROZEN_IDS))
def test_default_estimator_ids_are_the_recorded_strings(mode, name):
    assert SPECS[name].estimator_id(MetricsConfig(inception_mode=mode)) == FROZEN_IDS[mode, name]


def test_the_scoring_path_reports_the_recorded_ids(image_sets):
    report = score_image_sets(*image_sets, SMOKE)
    assert {name: _estimator(r) for name, r in report.results.items()} == {
        name: FROZEN_IDS["clean", name] for name in SPECS}
    assert {name: r.direction for name, r in report.results.items()} == {n: s.direction for n, s in SPECS.items()}


@pytest.mark.parametrize(("constant", "value", "expected"), [
    ("SIGMA", 12.5, "cmmd-rbf(sigma=12.5,scale=1000,biased)"),
    ("SCALE", 1.0, "cmmd-rbf(sigma=10,scale=1,biased)"),
    ("MMD_ESTIMATOR", "unbiased", "cmmd-rbf(sigma=10,scale=1000,unbiased)"),
])
def test_a_changed_cmmd_constant_changes_the_reported_id(image_sets, monkeypatch, constant, value, expected):
    config = SMOKE.model_copy(update={"names": ["cmmd"]})
    before = score_image_sets(*image_sets, config).results["cmmd"]
    monkeypatch.setattr(cmmd, constant, value)
    after = score_image_sets(*image_sets, config).results["cmmd"]
    assert _estimator(after) == expected != _estimator(before)
    if constant != "MMD_ESTIMATOR":  # a label only; sigma and scale are read by the computation too
        assert after.value != before.value


def test_a_changed_csd_estimator_changes_the_reported_id(image_sets, monkeypatch):
    monkeypatch.setattr(csd, "ESTIMATOR", "csd-something-else")
    report = score_image_sets(*image_sets, SMOKE.model_copy(update={"names": ["csd"]}))
    assert _estimator(report.results["csd"]) == "csd-something-else"


@pytest.mark.parametrize(("name", "base", "update", "part"), [
    ("kid", "clean", {"kid_subsets": 7}, "subsets=7,"), ("kid", "clean", {"kid_subset_size": 20}, "max_size=20,"),
    ("kid", "clean", {"seed": 3}, "seed=3,"),
    ("kid", "clean", {"inception_mode": "legacy_pytorch"}, "inception_mode=legacy_pytorch"),
    ("fid", "clean", {"inception_mode": "legacy_pytorch"}, "inception_mode=legacy_pytorch"),
    ("fid", "nsync-legacy", {"fid_bootstraps": 4}, "(n=4,"),
    ("fid", "nsync-legacy", {"seed": 5}, "seed=5,"),
    ("fid", "nsync-legacy", {"legacy_batch_size": 25}, "legacy_batch=25)"),
    ("kid", "nsync-legacy", {"legacy_batch_size": 25}, "legacy_batch=25)"),
])
def test_config_values_that_change_an_estimate_are_in_its_id(name, base, update, part):
    config = MetricsConfig(inception_mode=base)
    changed = SPECS[name].estimator_id(config.model_copy(update=update))
    assert part in changed and changed != SPECS[name].estimator_id(config)


def _features(n, d, seed):
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("mode", ["clean", "nsync-legacy"])
def test_each_spec_scores_with_its_modules_function(mode):
    """The numbers are those of the metric functions (tests/test_metric_functions.py pins those)."""
    config = MetricsConfig(inception_mode=mode, legacy_batch_size=25, fid_bootstraps=3, kid_subsets=5,
                           kid_subset_size=20, seed=2)
    gen, real = _features(60, 8, 0), _features(57, 8, 1)
    used = (50, 50) if mode == "nsync-legacy" else (60, 57)
    g, r = gen[:used[0]], real[:used[1]]
    expected_fid = fid.bootstrap_fid(g, r, n_bootstraps=3, seed=2) if mode == "nsync-legacy" else (
        fid.frechet_distance(g, r), None)
    expected = {
        "fid": (*expected_fid, *used),
        "kid": (*kid.kernel_inception_distance(g, r, num_subsets=5, max_subset_size=20, seed=2), *used),
        "cmmd": (cmmd.cmmd(gen, real), None, 60, 57),
        "csd": (csd.csd_score(gen, real), None, 60, 57),
    }
    for name, spec in SPECS.items():
        score = spec.score(gen, real, config)
        assert (score.value, score.std, score.n_generated, score.n_real) == expected[name], name
        assert (score.per_image is not None) == (name == "csd")
    np.testing.assert_array_equal(csd.SPEC.score(gen, real, config).per_image, csd.csd_per_image(gen, real))


class _Tags:
    def __init__(self):
        self.tags = {}

    def set_tags(self, tags):
        self.tags.update(tags)

    def log_metrics(self, metrics, step=None):
        pass


def test_the_report_reads_back_each_specs_direction(tmp_path):
    """Spec -> MetricResult -> run tags (log_scores) -> the report's table: the direction survives."""
    from nsync_bench.report.runs_table import load_report_data

    report = ScoreReport(results={name: MetricResult(name, 1.0, None, spec.direction, 4, 4,
                                                     f"{spec.estimator_id(MetricsConfig())}|x", 4, 4)
                                  for name, spec in SPECS.items()})
    tracker = _Tags()
    metrics = log_scores(report, tracker)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("identity", artifact_location=artifact_root(uri))
    coordinates = {"style": "toy-pastel", "method": "ti", "seed": "0", "profile": "smoke", "protocol": "matched"}
    tags = {**schema.run_tags(coordinates, "ti-0"), **schema.kind_tag(schema.RUN_KIND), **tracker.tags}
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    client.set_terminated(run_id, "FINISHED")
    results = load_report_data(uri, ["identity"]).results.set_index("metric")
    assert results["direction"].to_dict() == {name: spec.direction for name, spec in SPECS.items()}
    assert results["implementation"].to_dict() == {n: r.implementation for n, r in report.results.items()}


def test_the_reports_fixed_arrows_agree_with_the_specs():
    """Where the report names a direction itself (curve titles, per-prompt CSD), it matches the spec."""
    import pandas as pd

    from nsync_bench.report.analysis import compare_per_prompt
    from nsync_bench.report.plots import curve_labels

    for name, spec in SPECS.items():
        assert curve_labels()[f"curve/{name}"].endswith("↓ vs step" if spec.direction == "lower" else "↑ vs step")
    runs = pd.DataFrame([{"run_id": f"{m}{s}", "profile": "smoke", "protocol": "matched", "style": "toy-pastel",
                          "method": m, "seed": s} for m in ("a", "b") for s in (0, 1)])
    per_image = pd.DataFrame([{"run_id": f"{m}{s}", "index": i, "csd": 0.1 * i + (0.05 if m == "a" else 0.0) + s}
                              for m in ("a", "b") for s in (0, 1) for i in range(3)])
    table = compare_per_prompt(per_image, runs, [("a", "b")])
    assert set(table["direction"]) == {SPECS["csd"].direction}


def test_set_size_rules_come_from_the_specs(monkeypatch):
    """Preflight's refusal and warning thresholds are the specs' own: FID/KID need 2 images per set and warn
    below 50; CMMD/CSD are defined for any non-empty set. Changing a spec changes what preflight says."""
    import dataclasses

    from nsync_bench.metrics import registry
    from nsync_bench.pipeline.preflight import small_set_warnings

    assert {n: (s.min_images, s.reliable_images) for n, s in registry.specs().items()} == {
        "fid": (2, 50), "kid": (2, 50), "cmmd": (1, 1), "csd": (1, 1)}
    assert set(small_set_warnings(["fid", "kid", "cmmd", "csd"], 49, 100)) == {"fid", "kid"}
    assert small_set_warnings(["fid", "kid", "cmmd", "csd"], 50, 50) == {}
    monkeypatch.setattr(cmmd, "SPEC", dataclasses.replace(cmmd.SPEC, reliable_images=60))
    assert set(small_set_warnings(["cmmd"], 55, 100)) == {"cmmd"}


def test_the_registry_is_light_enough_for_the_report():
    """The report and preflight read names, directions and set-size rules from the registry: importing it
    (or the report's runs table) must not import torch or feature extraction."""
    import subprocess
    import sys

    code = ("import sys, nsync_bench.metrics.registry, nsync_bench.report.runs_table; "
            "print(sorted(m for m in ('torch', 'nsync_bench.metrics.scoring') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
