"""Scoring image folders: conversions, counts, corrupt files, the feature cache, the metrics CLI."""

import json

import numpy as np
import pytest
from helpers import write_images
from PIL import Image
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.config.run_config import MetricsConfig
from nsync_bench.errors import DataError
from nsync_bench.metrics.images import list_image_files
from nsync_bench.metrics.scoring import score_image_sets

SMOKE = MetricsConfig(extractors="smoke", device="cpu", batch_size=4)


def test_every_mode_is_converted_and_counted_none_dropped(tmp_path):
    gen = write_images(tmp_path / "gen", 10, 0, modes=("RGB", "RGBA", "L", "P", "I;16"), sizes=((40, 40), (64, 48)))
    real = write_images(tmp_path / "real", 7, 1)
    report = score_image_sets(list_image_files(gen), list_image_files(real), SMOKE)
    assert {r.n_generated for r in report.results.values()} == {10}
    assert {r.n_real for r in report.results.values()} == {7}
    assert report.generated.count == 10
    sixteen_bit = Image.open(gen / "004.png").mode  # "I;16" (Pillow < 10.? read such PNGs as "I")
    assert sixteen_bit in {"I;16", "I"}
    assert dict(report.generated.converted) == {"RGBA": 2, "L": 2, "P": 2, sixteen_bit: 2}
    assert "2 different sizes" in report.generated.note()
    assert len(report.per_image_csd) == 10
    for result in report.results.values():
        assert np.isfinite(result.value) and result.implementation.split("|")[1].startswith("smoke-random:")


def test_a_corrupt_image_is_an_error_naming_it(tmp_path):
    gen = write_images(tmp_path / "gen", 4, 0)
    (gen / "002.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    real = write_images(tmp_path / "real", 4, 1)
    with pytest.raises(DataError, match=r"002\.png"):
        score_image_sets(list_image_files(gen), list_image_files(real), SMOKE)


def test_feature_cache_hits_the_second_time_and_misses_after_a_change(tmp_path):
    gen = write_images(tmp_path / "gen", 6, 0)
    real = write_images(tmp_path / "real", 6, 1)
    cache = tmp_path / "cache"
    first = score_image_sets(list_image_files(gen), list_image_files(real), SMOKE, cache_root=cache)
    assert (first.cache_hits, first.cache_misses) == (0, 6)  # 3 extractors x 2 sets
    second = score_image_sets(list_image_files(gen), list_image_files(real), SMOKE, cache_root=cache)
    assert (second.cache_hits, second.cache_misses) == (6, 0)
    assert {k: v.value for k, v in first.results.items()} == {k: v.value for k, v in second.results.items()}
    write_images(tmp_path / "gen", 1, 99)  # overwrite 000.png with other pixels
    third = score_image_sets(list_image_files(gen), list_image_files(real), SMOKE, cache_root=cache)
    assert (third.cache_hits, third.cache_misses) == (3, 3)  # the real set still hits
    assert third.results["fid"].value != first.results["fid"].value


def test_metrics_cli_on_a_folder_against_itself(tmp_path):
    folder = write_images(tmp_path / "imgs", 12, 3)
    result = CliRunner().invoke(app, ["metrics", str(folder), str(folder), "--profile", "smoke", "--json",
                                      "--no-cache"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert abs(payload["metrics"]["fid"]["value"]) < 1e-6
    assert payload["metrics"]["cmmd"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert payload["metrics"]["fid"]["n_generated"] == 12
    table = CliRunner().invoke(app, ["metrics", str(folder), str(folder), "--profile", "smoke", "--metrics", "fid",
                                     "--no-cache"])
    assert table.exit_code == 0 and "FID" in table.output and "lower" in table.output


def test_metrics_cli_teaches_about_bad_folders_and_names(tmp_path):
    folder = write_images(tmp_path / "imgs", 3, 3)
    missing = CliRunner().invoke(app, ["metrics", str(folder), str(tmp_path / "nope"), "--profile", "smoke"])
    assert missing.exit_code == 2 and "nope" in missing.output
    bad = CliRunner().invoke(app, ["metrics", str(folder), str(folder), "--profile", "smoke", "--metrics", "fud"])
    assert bad.exit_code == 2 and "fid" in bad.output


def test_bench_metrics_reports_throughput_and_cached_speedup():
    result = CliRunner().invoke(app, ["bench", "--only", "metrics", "--n-images", "8", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)["metrics"]
    assert set(payload["extractors"]) == {"inception", "clip", "csd"}
    assert all(row["images_per_s"] > 0 for row in payload["extractors"].values())
    assert payload["evaluation"]["speedup"] > 0  # a ratio, reported not asserted (machines differ)


def test_too_few_images_for_fid_are_explained_in_the_users_terms(tmp_path):
    """FID/KID need two images per set: said in the user's terms, not the estimator's ("feats_a")."""
    one = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(one)
    with pytest.raises(DataError) as info:
        score_image_sets([one], [one, one], MetricsConfig(names=["fid", "csd"], extractors="smoke"))
    assert "generated (first) image set has 1 image(s)" in str(info.value) and "feats_a" not in str(info.value)
