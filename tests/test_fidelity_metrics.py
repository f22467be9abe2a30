"""paper-code's FID/KID are gan-metrics-pytorch's: the nsync-legacy mode, whole batches only, counts reported."""

import json

import pytest
from helpers import write_images
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.config.recipes import resolve_config
from nsync_bench.config.run_config import MetricsConfig
from nsync_bench.errors import ConfigError
from nsync_bench.metrics.images import list_image_files
from nsync_bench.metrics.legacy import inception_mode_note, inception_mode_of, legacy_used_count
from nsync_bench.metrics.scoring import MetricResult, ScoreReport, score_image_sets
from nsync_bench.pipeline.evaluation import log_scores


def _resolve(protocol, method="ti", profile="sd15"):
    return resolve_config(style="toy-pastel", method=method, seed=0, profile=profile, protocol=protocol)


@pytest.mark.parametrize("method", ["ti", "lora", "nsync", "nsync-lora"])
def test_paper_code_scores_fid_and_kid_the_way_the_paper_did(method):
    paper = _resolve("paper-code", method).metrics
    assert (paper.inception_mode, paper.legacy_batch_size, paper.fid_bootstraps) == ("nsync-legacy", 50, 10)
    assert _resolve("matched", method).metrics.inception_mode == "clean"
    # The smoke profile keeps its random-weight extractors but not the mode.
    assert _resolve("paper-code", method, profile="smoke").metrics.inception_mode == "nsync-legacy"


def test_profiles_command_shows_the_legacy_mode_under_paper_code():
    shown = CliRunner().invoke(app, ["profiles", "sd15", "--protocol", "paper-code", "--method", "ti"])
    assert shown.exit_code == 0, shown.output
    assert '"inception_mode": "nsync-legacy"' in shown.output
    assert '"legacy_batch_size": 50' in shown.output


@pytest.mark.parametrize(("n", "batch", "used"), [(120, 50, 100), (130, 50, 100), (100, 50, 100), (149, 50, 100),
                                                  (150, 50, 150), (49, 50, 49), (1, 50, 1), (7, 3, 6), (7, 1, 7),
                                                  (0, 50, 0)])
def test_whole_batches_only(n, batch, used):
    assert legacy_used_count(n, batch) == used


def test_a_bad_legacy_batch_size_teaches():
    with pytest.raises(ConfigError, match=r"legacy_batch_size.*50"):
        legacy_used_count(10, 0)


def test_metrics_cli_nsync_legacy_reports_the_images_actually_used(tmp_path):
    gen = write_images(tmp_path / "gen", 120, 0, sizes=((16, 16),))
    real = write_images(tmp_path / "real", 130, 1, sizes=((16, 16),))
    result = CliRunner().invoke(app, ["metrics", str(gen), str(real), "--mode", "nsync-legacy", "--profile", "smoke",
                                      "--metrics", "fid,kid,cmmd", "--json", "--no-cache"])
    assert result.exit_code == 0, result.output
    # click < 8.2 mixes the log's warning into stdout: the JSON is the object after it
    payload = json.loads(result.stdout[result.stdout.index("\n{") + 1:] if not result.stdout.startswith("{")
                         else result.stdout)
    assert payload["inception_mode"] == "nsync-legacy"
    for name in ("fid", "kid"):
        entry = payload["metrics"][name]
        assert (entry["n_generated"], entry["n_real"]) == (100, 100)
        assert (entry["n_generated_available"], entry["n_real_available"]) == (120, 130)
        assert inception_mode_of(entry["implementation"]) == "nsync-legacy"
        assert "legacy_batch=50" in entry["implementation"]
    # CMMD comes from another reference (cmmd-pytorch), which keeps every image.
    assert (payload["metrics"]["cmmd"]["n_generated"], payload["metrics"]["cmmd"]["n_real"]) == (120, 130)

    # The dropped images are the last ones in file order: scoring only the first 100 gives the same numbers.
    config = MetricsConfig(extractors="smoke", device="cpu", batch_size=16, names=["fid", "kid"],
                           inception_mode="nsync-legacy")
    first = score_image_sets(list_image_files(gen)[:100], list_image_files(real)[:100], config)
    for name in ("fid", "kid"):
        assert first.results[name].value == pytest.approx(payload["metrics"][name]["value"], rel=1e-12)
    # A batch size of 1 keeps everything, and changes the numbers.
    every = CliRunner().invoke(app, ["metrics", str(gen), str(real), "--mode", "nsync-legacy", "--profile", "smoke",
                                     "--metrics", "fid", "--legacy-batch-size", "1", "--json", "--no-cache"])
    fid = json.loads(every.stdout)["metrics"]["fid"]
    assert (fid["n_generated"], fid["n_real"]) == (120, 130)
    assert fid["value"] != payload["metrics"]["fid"]["value"]


def test_clean_mode_uses_every_image(tmp_path):
    gen = write_images(tmp_path / "gen", 53, 0, sizes=((16, 16),))
    real = write_images(tmp_path / "real", 51, 1, sizes=((16, 16),))
    config = MetricsConfig(extractors="smoke", device="cpu", batch_size=16, names=["fid", "kid"])
    report = score_image_sets(list_image_files(gen), list_image_files(real), config)
    for result in report.results.values():
        assert (result.n_generated, result.n_real) == (53, 51)
        assert inception_mode_of(result.implementation) == "clean"


class _Tags:
    def __init__(self):
        self.tags = {}

    def set_tags(self, tags):
        self.tags.update(tags)


def test_run_tags_carry_the_counts_used_and_available():
    report = ScoreReport(results={"fid": MetricResult("fid", 1.0, 0.1, "lower", 100, 100,
                                                      "fid-bootstrap(inception_mode=nsync-legacy)|x", 120, 130)})
    tracker = _Tags()
    log_scores(report, tracker)
    assert tracker.tags["metric.fid.n_generated"] == "100" and tracker.tags["metric.fid.n_real"] == "100"
    assert tracker.tags["metric.fid.n_generated_available"] == "120"
    assert tracker.tags["metric.fid.n_real_available"] == "130"


def test_report_note_names_the_inception_mode():
    note = inception_mode_note({"fid": "fid-bootstrap(n=10,seed=0,inception_mode=nsync-legacy,legacy_batch=50)|x",
                                "kid": "kid-mmd2u-cubic(inception_mode=nsync-legacy,legacy_batch=50)|x",
                                "cmmd": "cmmd-rbf|y"})
    assert note.startswith("FID and KID: Inception mode nsync-legacy") and "gan-metrics-pytorch" in note
    assert "clean-fid" in inception_mode_note({"fid": "fid(inception_mode=clean)|x"})
    assert "not comparable" in inception_mode_note({"fid": "fid(inception_mode=clean)|x",
                                                    "kid": "kid(inception_mode=nsync-legacy)|x"})
    assert "not recorded" in inception_mode_note({"fid": "fid|old-run"})
    assert inception_mode_note({"csd": "csd|z"}) is None
