"""Issue 11's smaller defects: stale temp sets, estimator jargon, headerless CSVs, raw PIL warnings, --out reuse."""

import io
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_report_cells import Store

from nsync_bench.config.run_config import MetricsConfig
from nsync_bench.data.styles import ensure_style_data, style_status
from nsync_bench.data.validate import validate_style
from nsync_bench.errors import DataError
from nsync_bench.metrics.scoring import score_image_sets
from nsync_bench.report.build import ReportError, build_report


def test_a_killed_negative_render_is_not_counted_as_a_cached_set(tmp_path, data_root):
    ensure_style_data("toy-ink", data_root)
    base = tmp_path / "negatives" / "tiny" / "toy-ink"
    (base / ".tmp-negatives-abc" / "train").mkdir(parents=True)  # what a killed render leaves
    (base / "0123456789abcdef" / "train").mkdir(parents=True)
    (base / "0123456789abcdef" / "negatives.json").write_text("{}")
    (tmp_path / "toy-ink").symlink_to(data_root / "toy-ink")
    assert style_status("toy-ink", tmp_path).negative_sets == 1


def test_too_few_images_for_fid_are_explained_in_the_users_terms(tmp_path):
    one = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(one)
    with pytest.raises(DataError) as info:
        score_image_sets([one], [one, one], MetricsConfig(names=["fid", "csd"], extractors="smoke"))
    assert "generated (first) image set has 1 image(s)" in str(info.value) and "feats_a" not in str(info.value)


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_a_report_with_nothing_to_compare_writes_csvs_with_headers(tmp_path):
    store = Store(tmp_path)
    store.add("ti", 0, 50.0)
    store.add("ti", 1, 51.0)
    result = build_report(["cells"], tracking_uri=store.uri, out_dir=tmp_path / "out", log_to_mlflow=False,
                          data_root=tmp_path / "data")
    comparisons = pd.read_csv(result.comparisons_csv)
    assert comparisons.empty and {"candidate", "baseline", "p_t_adj"} <= set(comparisons.columns)
    assert "verdict" in pd.read_csv(result.claims_csv).columns
    # --out never overwrites an existing report.
    with pytest.raises(ReportError, match="already exists"):
        build_report(["cells"], tracking_uri=store.uri, out_dir=tmp_path / "out", log_to_mlflow=False)


def test_large_images_are_a_validation_row_not_a_raw_warning(tmp_path, monkeypatch):
    from nsync_bench.data.pixels import load_rgb

    style = tmp_path / "ghibli"
    for split in ("train", "test"):
        (style / split).mkdir(parents=True)
        for k in range(2):
            buffer = io.BytesIO()
            Image.fromarray(np.full((40, 40, 3), 30 * k, dtype=np.uint8)).save(buffer, format="PNG")
            (style / split / f"{split}{k}.png").write_bytes(buffer.getvalue())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 pixels: above the warning threshold
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any raw warning fails the test
        report = validate_style("ghibli", tmp_path, 32)
        load_rgb(style / "train" / "train0.png")
    assert {p.kind for p in report.warnings} >= {"large_image"}
