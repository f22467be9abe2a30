"""The real-data floor: real train vs test images with the runs' metric code, logged once as a reference run."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import FAST

from nsync_bench.config.run_config import MetricsConfig
from nsync_bench.data.styles import ensure_style_data, list_images
from nsync_bench.metrics.scoring import score_image_sets
from nsync_bench.pipeline.reference import ensure_floor, floor_images, metrics_config_from_params, reference_key

SMOKE_METRICS = MetricsConfig(extractors="smoke", device="cpu", batch_size=16)


def test_identical_sets_score_the_perfect_values(data_root, tmp_path):
    files = [img.path for img in list_images(ensure_style_data("toy-ink", data_root), "test")]
    report = score_image_sets(files, files, SMOKE_METRICS, cache_root=tmp_path)
    assert report.results["fid"].value == pytest.approx(0.0, abs=1e-6)
    assert report.results["cmmd"].value == pytest.approx(0.0, abs=1e-9)
    # CSD of a set against itself: the mean cosine to its own mean embedding, the largest any set of
    # these images can reach (every other set scores a mean of cosines to the same centroid).
    other = [img.path for img in list_images(ensure_style_data("toy-pastel", data_root), "test")]
    against = score_image_sets(other, files, SMOKE_METRICS, cache_root=tmp_path)
    assert report.results["csd"].value > against.results["csd"].value
    assert against.results["fid"].value > 1.0


def test_floor_images_sample_train_like_a_run(data_root):
    images = floor_images("toy-pastel", data_root, 3, seed=0)
    train = [img.path for img in list_images(data_root / "toy-pastel", "train")]
    assert len(images.generated) == 3 and set(images.generated) <= set(train)
    assert images.generated == sorted(images.generated)  # file order kept
    assert images.generated == floor_images("toy-pastel", data_root, 3, seed=0).generated  # seeded
    assert floor_images("toy-pastel", data_root, 10_000).generated == train  # fewer train images: all of them
    assert len(images.real) == len(list_images(data_root / "toy-pastel", "test"))
    assert reference_key("toy-pastel", SMOKE_METRICS, images) != reference_key(
        "toy-pastel", SMOKE_METRICS.model_copy(update={"kid_subsets": 7}), images)
    with pytest.raises(ValueError, match="n_generated"):
        floor_images("toy-pastel", data_root, 0)


def test_floor_is_logged_once_as_a_reference_run(data_root, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.create_experiment("floor")
    first = ensure_floor(uri, "floor", [experiment_id], style="toy-pastel", profile="smoke", metrics=SMOKE_METRICS,
                         n_generated=4, data_root=data_root)
    assert first.computed and set(first.values) == {"fid", "kid", "cmmd", "csd"}
    assert first.tags["metric.fid.n_generated"] == "4" and first.tags["metric.fid.n_real"] == "8"
    second = ensure_floor(uri, "floor", [experiment_id], style="toy-pastel", profile="smoke", metrics=SMOKE_METRICS,
                          n_generated=4, data_root=data_root)
    assert not second.computed and second.run_id == first.run_id and second.values == pytest.approx(first.values)
    runs = mlflow.search_runs([experiment_id])
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["tags.nsync_bench.kind"] == "reference" and row["tags.method"] == "real-data"
    assert row["tags.style"] == "toy-pastel" and row["tags.reference_key"] == first.key
    assert "tags.run_key" not in row or pd.isna(row["tags.run_key"])  # never a method run
    assert "smoke-random:" in row["tags.metric.fid.implementation"]
    assert np.isfinite(row["metrics.metrics/fid"]) and row["metrics.metrics/fid"] > 0  # finite samples: above 0


def test_metrics_config_round_trips_through_mlflow_params():
    from nsync_bench.config.run_config import flatten

    params = {k: str(v) for k, v in flatten({"metrics": SMOKE_METRICS.model_dump(mode="json")}).items()}
    assert metrics_config_from_params({**params, "train.max_steps": "6"}) == SMOKE_METRICS


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_report_shows_the_floor_row_and_never_compares_it(run_options, tmp_path):
    from nsync_bench.pipeline.runner import run
    from nsync_bench.report.build import build_report

    for seed in (0, 1):
        run(style="toy-pastel", method="ldm", seed=seed, overrides=FAST, options=run_options)
    result = build_report(["test"], tracking_uri=run_options.tracking_uri, out_dir=tmp_path / "report",
                          data_root=run_options.data_root, log_to_mlflow=False)
    reference = pd.read_csv(result.out_dir / "reference.csv")
    assert set(reference["metric"]) == {"fid", "kid", "cmmd", "csd"} and set(reference["style"]) == {"toy-pastel"}
    assert set(reference["n_generated"]) == {2} and set(reference["n_real"]) == {8}  # as the runs (max_prompts=2)
    summary = pd.read_csv(result.summary_csv)
    assert set(summary["method"]) == {"ldm"}  # the floor is not a method
    markdown = result.markdown.read_text(encoding="utf-8")
    assert "real data (floor)" in markdown and "(2 vs 8 real)" in markdown
    # A second report reads the logged floor instead of computing it again.
    mlflow.set_tracking_uri(run_options.tracking_uri)
    floors = mlflow.search_runs(experiment_names=["test"], filter_string="tags.`nsync_bench.kind` = 'reference'")
    assert len(floors) == 1
    build_report(["test"], tracking_uri=run_options.tracking_uri, out_dir=tmp_path / "again",
                 data_root=run_options.data_root, log_to_mlflow=False)
    assert len(mlflow.search_runs(experiment_names=["test"],
                                  filter_string="tags.`nsync_bench.kind` = 'reference'")) == 1
