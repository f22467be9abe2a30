"""Issue 20, item 2: finished means finished everywhere.

``result.json`` is written before the MLflow run is closed, so a crash in between (or a failed upload of
the last artifact) left a run that ``run``/``sweep`` skipped as finished and ``report`` left out as
RUNNING, forever. Now the order is explicit (nsync_bench.pipeline.results), ``report`` names the mismatch
and the next ``run`` of the key closes the MLflow run as FINISHED.
"""

import pytest
from conftest import FAST
from mlflow.tracking import MlflowClient

from nsync_bench.pipeline.runner import RESULT_FILE, run
from nsync_bench.report.runs_table import ReportError, load_report_data
from nsync_bench.tracking.tracker import MlflowTracker

pytestmark = pytest.mark.slow  # end-to-end runs: kept out of the fast tier


def _status(options, run_id):
    return MlflowClient(options.tracking_uri).get_run(run_id).info.status


@pytest.mark.parametrize("failure", ["crash before closing", "failed last upload"])
def test_a_result_whose_mlflow_run_was_left_open_is_reconciled_on_the_next_run(run_options, monkeypatch, failure):
    seen = {}
    real_finish, real_upload = MlflowTracker.finish, MlflowTracker.log_artifact

    def crash(self, status="FINISHED"):
        run_dir = next(run_options.runs_dir.rglob(RESULT_FILE)).parent
        seen["result before close"] = (run_dir / RESULT_FILE).is_file()
        raise RuntimeError("the process died here")

    def failing_upload(self, path, artifact_path=None):
        if path.name == "run.log" and (path.parent / RESULT_FILE).is_file():
            raise OSError("connection reset while uploading run.log")
        real_upload(self, path, artifact_path)

    if failure == "crash before closing":
        monkeypatch.setattr(MlflowTracker, "finish", crash)
    else:
        monkeypatch.setattr(MlflowTracker, "log_artifact", failing_upload)
    with pytest.raises(Exception):  # whatever the crash was, the run did not return
        run(style="toy-ink", method="ti", seed=0, overrides=FAST, options=run_options)
    if failure == "crash before closing":
        assert seen == {"result before close": True}  # the order: result.json first, then MLflow
    monkeypatch.setattr(MlflowTracker, "finish", real_finish)
    monkeypatch.setattr(MlflowTracker, "log_artifact", real_upload)
    run_dir = next(run_options.runs_dir.rglob(RESULT_FILE)).parent
    run_id = (run_dir / "mlflow_run_id").read_text()
    assert _status(run_options, run_id) == "RUNNING"

    with pytest.raises(ReportError) as info:  # the report names the mismatch and the fix
        load_report_data(run_options.tracking_uri, [run_options.experiment])
    message = " ".join(str(info.value).split())
    assert "RUNNING in MLflow, but its folder" in message and "holds a complete, verified result" in message
    assert "run the same `nsync-bench run` or `sweep` command again" in message

    again = run(style="toy-ink", method="ti", seed=0, overrides=FAST, options=run_options)
    assert again.skipped and again.mlflow_run_id == run_id
    assert _status(run_options, run_id) == "FINISHED"
    client = MlflowClient(run_options.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(run_options.experiment).experiment_id])
    assert len(runs) == 1 and runs[0].data.metrics["metrics/fid"] == pytest.approx(again.metrics["metrics/fid"])
    assert len(load_report_data(run_options.tracking_uri, [run_options.experiment]).runs) == 1
