"""The MLflow helper process of `nsync-bench run`: it records what in-process tracking records, and its
errors reach the run with MLflow's (or our teaching) message."""

from __future__ import annotations

import io
import signal

import pytest
from conftest import FAST
from mlflow.tracking import MlflowClient

from nsync_bench.errors import NsyncBenchError
from nsync_bench.tracking import remote


@pytest.fixture
def helper(tmp_path):
    sidecar = remote.start(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert sidecar is not None and remote.current(sidecar.tracking_uri) is sidecar
    yield sidecar
    sidecar.close()


def test_a_run_through_the_helper_records_what_an_in_process_run_records(tmp_path, data_root):
    from mlflow.tracking import MlflowClient

    from nsync_bench.pipeline.runner import RunOptions, run

    results, uri = {}, f"sqlite:///{tmp_path / 'mlflow.db'}"
    for label in ("in-process", "helper"):
        options = RunOptions(runs_dir=tmp_path / label, data_root=data_root, tracking_uri=uri, experiment=label)
        if label == "helper":
            remote.start(uri)
        try:
            results[label] = run(style="toy-pastel", method="ti", overrides=FAST, options=options)
        finally:
            remote.stop_all()
    client = MlflowClient(uri)
    a, b = (client.get_run(results[k].mlflow_run_id) for k in ("in-process", "helper"))
    assert a.info.status == b.info.status == "FINISHED"
    timing = {"train/step_time"}  # wall-clock, differs between any two runs
    assert a.data.params == b.data.params
    assert {k: v for k, v in a.data.metrics.items() if k not in timing} == {
        k: v for k, v in b.data.metrics.items() if k not in timing}
    varying = {"run_dir", "mlflow.note.content"}  # the folder and the command name the experiment
    assert {k: v for k, v in a.data.tags.items() if k not in varying} == {
        k: v for k, v in b.data.tags.items() if k not in varying}
    assert [m.value for m in client.get_metric_history(a.info.run_id, "train/loss")] == [
        m.value for m in client.get_metric_history(b.info.run_id, "train/loss")]
    artifacts = [{f.path for f in client.list_artifacts(r.info.run_id)} for r in (a, b)]
    assert artifacts[0] == artifacts[1]
    assert len(a.inputs.dataset_inputs) == len(b.inputs.dataset_inputs) == 2
    # The finished run is found through the helper too, so the same command is not recomputed.
    remote.start(uri)
    try:
        found = remote.find_finished_run(uri, "helper", results["helper"].run_key)
    finally:
        remote.stop_all()
    assert found.info.run_id == b.info.run_id and found.data.metrics == b.data.metrics


def test_a_teaching_error_reaches_the_run_with_its_message():
    sidecar = remote.start("http://127.0.0.1:9")  # nothing listens on the discard port
    try:
        with pytest.raises(NsyncBenchError, match="does not answer"):
            remote.find_finished_run("http://127.0.0.1:9", "x", "0123")
    finally:
        sidecar.close()


def test_an_error_of_a_call_nobody_waited_for_comes_with_the_next_answer(helper):
    helper.call("log_metrics", {"train/loss": 1.0}, 1, wait=False)  # before any run was opened
    with pytest.raises(remote.SidecarError, match="before the run was opened"):
        helper.call("find_finished_run", "nothing", "0123")
    assert helper.call("find_finished_run", "nothing", "0123") is None  # reported once


def test_the_helper_ignores_ctrl_c_and_ends_with_its_input(helper):
    import os

    process = helper._process
    # A terminal's Ctrl-C goes to the run's process group; the helper has its own (the run ends its MLflow
    # run as KILLED through it), and ignores SIGINT sent to it directly once it is up.
    assert os.getpgid(process.pid) != os.getpgid(0)
    assert helper.call("find_finished_run", "nothing", "0123") is None
    process.send_signal(signal.SIGINT)
    assert helper.call("find_finished_run", "nothing", "0123") is None
    helper.close()
    assert process.wait(timeout=30) == 0
    assert remote.current(helper.tracking_uri) is None


def test_a_failed_tag_write_stops_the_run_at_its_next_waiting_call(helper, tmp_path):
    # Tags go without waiting; MLflow refuses a key of 300 characters, and the artifact call after it (in a
    # run: before its result is written) reports that, with MLflow's message.
    tracker = remote.RemoteTracker(helper, "deferred", "r", {"style": "s"})
    assert tracker.run_id
    tracker.set_tags({"k" * 300: "v"})
    note = tmp_path / "note.txt"
    note.write_text("x")
    with pytest.raises(remote.SidecarError, match="MLflow"):
        tracker.log_artifact(note)
    tracker.log_artifact(note)  # reported once; the helper goes on
    tracker.finish("FAILED")


def test_the_helper_creates_no_store_for_a_run_that_never_logs(tmp_path):
    """A run refused after the helper started (a bad style, say) must leave no new store behind. MlflowClient
    creates a missing SQLite store when it is constructed, and the helper's warm-up once constructed one: the
    store appeared a moment after the refused command had returned. Run here in this process, synchronously."""
    from nsync_bench.tracking.sidecar import _serve

    replies = io.StringIO()
    _serve(f"sqlite:///{tmp_path / 'new.db'}", io.StringIO(""), replies)  # started, then told the run is over
    assert sorted(p.name for p in tmp_path.iterdir()) == [] and replies.getvalue() == ""
    # An existing store is opened at once (its migration, if any, overlaps the run's imports).
    MlflowClient(f"sqlite:///{tmp_path / 'old.db'}")
    before = (tmp_path / "old.db").stat().st_size
    _serve(f"sqlite:///{tmp_path / 'old.db'}", io.StringIO(""), io.StringIO())
    assert (tmp_path / "old.db").stat().st_size == before
