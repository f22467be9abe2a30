"""Report cells: only runs identical in everything but the seed are pooled; repeats and failures never count.

Runs are written directly with ``MlflowClient`` (no training), with params as a run logs them.
"""

import pandas as pd
import pytest
from helpers import ReportStore

from nsync_bench.report.build import build_report
from nsync_bench.report.runs_table import load_report_data
from nsync_bench.tracking import schema


@pytest.fixture
def store(tmp_path):
    return ReportStore(tmp_path)


def _summary(data, metric="fid"):
    from nsync_bench.report.analysis import summarize

    frame = summarize(data.results)
    return frame[frame["metric"] == metric].set_index("method")


def test_runs_differing_in_more_than_the_seed_are_separate_labelled_rows(store):
    for seed in (0, 1):
        store.add("ti", seed, 50.0 + seed)
        store.add("nsync", seed, 40.0 + seed)
    store.add("ti", 0, 999.0, params={"train.learning_rate": "1e9"})  # the reproducer: same seed 0
    data = load_report_data(store.uri, ["cells"])
    summary = _summary(data)
    assert set(summary.index) == {"ti", "nsync", "ti (train.learning_rate=1e9)"}
    assert summary.loc["ti", "n"] == 2 and summary.loc["ti", "seeds"] == "0,1"
    assert summary.loc["ti", "mean"] == pytest.approx(50.5)  # the 999 of the other cell is not pooled
    assert summary.loc["ti (train.learning_rate=1e9)", "seeds"] == "0"
    runs = data.runs.set_index("method")
    assert runs.loc["ti (train.learning_rate=1e9)", "base_method"] == "ti"
    # Seed counts never exceed the distinct seeds, in any row.
    for _, row in summary.iterrows():
        assert row["n"] == len(set(row["seeds"].split(",")))


def test_changed_data_is_a_different_cell_and_the_plain_cell_is_the_one_matching_the_other_methods(store):
    store.add("ti", 0, 50.0)
    store.add("ti", 0, 70.0, params={"data_identity.train.images": "b" * 64})
    store.add("nsync", 0, 40.0, params={"data_identity.train.images": "b" * 64})
    data = load_report_data(store.uri, ["cells"])
    summary = _summary(data)
    assert summary.loc["ti", "mean"] == 70.0  # the ti run on nsync's data keeps the plain label
    assert f"ti (data_identity.train.images={'a' * 8})" in summary.index


def test_repeats_of_one_cell_and_seed_keep_only_the_latest(store):
    store.add("ti", 0, 50.0, run_key="old-key")
    store.add("ti", 0, 52.0, run_key="new-key")  # e.g. rerun after a code change bumped the key version
    data = load_report_data(store.uri, ["cells"])
    summary = _summary(data)
    assert summary.loc["ti", "n"] == 1 and summary.loc["ti", "mean"] == 52.0


def test_failed_and_running_runs_are_listed_never_analysed(store, tmp_path):
    for seed in (0, 1):
        store.add("ti", seed, 50.0 + seed)
        store.add("nsync", seed, 40.0 + seed)
    store.add("nsync", 2, float("nan"), status="FAILED")
    store.add("ti", 2, 0.0, status="RUNNING")
    data = load_report_data(store.uri, ["cells"])
    assert sorted(data.runs["seed"]) == [0, 0, 1, 1]
    assert sorted(data.unfinished["status"]) == ["FAILED", "RUNNING"]
    assert any("left out 2 run(s)" in w and "1 FAILED" in w and "1 RUNNING" in w for w in data.warnings)
    result = build_report(["cells"], tracking_uri=store.uri, out_dir=tmp_path / "report", log_to_mlflow=False,
                          data_root=tmp_path / "data")
    failed = pd.read_csv(result.out_dir / "failed_runs.csv")
    assert sorted(failed["status"]) == ["FAILED", "RUNNING"]
    assert any("left out" in w for w in result.warnings)


def test_metric_warnings_of_the_runs_are_repeated_by_the_report(store, tmp_path):
    for seed in (0, 1):
        run_id = store.add("ti", seed, 50.0 + seed)
        warning = schema.metric_tag("fid", schema.WARNING)
        store.client.set_tag(run_id, warning, "FID from 2 generated and 8 real images (fewer than 50)")
    result = build_report(["cells"], tracking_uri=store.uri, out_dir=tmp_path / "report", log_to_mlflow=False,
                          data_root=tmp_path / "data")
    assert any("fid: 2 run(s) carry a warning" in w for w in result.warnings)
    assert "fid: 2 run(s) carry a warning" in result.markdown.read_text(encoding="utf-8")


def test_a_huge_or_unreadable_seed_tag_does_not_break_the_report(store):
    store.add("ti", 99999999999999999999999, 50.0)
    store.add("ti", 1, 51.0)
    store.client.set_tag(store.add("ti", 2, 52.0), "seed", "not-a-number")
    data = load_report_data(store.uri, ["cells"])
    assert sorted(data.runs["seed"]) == [1, 99999999999999999999999]
    assert any("unreadable seed" in w for w in data.warnings)
    assert _summary(data).loc["ti", "n"] == 2


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_a_report_with_nothing_to_compare_writes_csvs_with_headers(tmp_path):
    from nsync_bench.report.build import ReportError

    store = ReportStore(tmp_path)
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
