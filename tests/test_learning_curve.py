"""Learning curves (eval.at_steps): scored at each step, kept across a resume, harmless to training."""

import json

import pytest
from conftest import FAST
from mlflow.tracking import MlflowClient

from nsync_bench.config.recipes import resolve_config
from nsync_bench.errors import ConfigError
from nsync_bench.pipeline.learning_curve import CURVE_FILE, read_curve
from nsync_bench.pipeline.runner import run

CURVE = [*FAST, "eval.at_steps=[4, 2, 2, 9]"]  # unsorted, repeated, and 9 >= max_steps (the final evaluation)


def test_at_steps_are_validated_and_default_to_the_end_only():
    assert resolve_config(style="toy-pastel", method="ti", profile="smoke").eval.at_steps == []
    sd15 = resolve_config(style="toy-pastel", method="ti", profile="sd15")
    assert sd15.eval.at_steps == list(range(1000, 8000, 1000))  # + the final evaluation at 8000
    assert resolve_config(style="toy-pastel", method="ti", profile="smoke", overrides=CURVE).eval.at_steps == [2, 4, 9]
    with pytest.raises(ConfigError, match="at_steps"):
        resolve_config(style="toy-pastel", method="ti", profile="smoke", overrides=["eval.at_steps=[0, 3]"])


def _history(uri, run_id, key):
    return sorted((m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, key))


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_learning_curve_survives_resume_and_leaves_training_unchanged(run_options, tmp_path):
    def stop_at_4(step):
        if step == 4:  # before the curve's own callback: step 4 is checkpointed but not yet evaluated
            raise KeyboardInterrupt

    run_options.callbacks = [stop_at_4]
    with pytest.raises(KeyboardInterrupt):
        run(style="toy-pastel", method="ti", overrides=CURVE, options=run_options)
    run_dir = next(run_options.runs_dir.rglob("checkpoints")).parent
    assert sorted(read_curve(run_dir / "eval" / CURVE_FILE)) == [2]
    first_image = run_dir / "eval" / "steps" / "000002" / "images" / "00000.png"
    stamp = first_image.stat().st_mtime_ns

    run_options.callbacks = []
    resumed = run(style="toy-pastel", method="ti", overrides=CURVE, options=run_options)
    lines = (run_dir / "eval" / CURVE_FILE).read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4, 6]  # 2 kept, 4 evaluated on resume, 6 = final
    assert first_image.stat().st_mtime_ns == stamp  # the step-2 evaluation was not redone
    fid = _history(run_options.tracking_uri, resumed.mlflow_run_id, "curve/fid")
    assert [step for step, _ in fid] == [2, 4, 6]
    assert fid[-1][1] == resumed.metrics["metrics/fid"]
    for name in ("kid", "cmmd", "csd"):
        assert [s for s, _ in _history(run_options.tracking_uri, resumed.mlflow_run_id, f"curve/{name}")] == [2, 4, 6]
    artifacts = {a.path for a in MlflowClient(run_options.tracking_uri).list_artifacts(resumed.mlflow_run_id,
                                                                                        "eval/steps/2")}
    assert "eval/steps/2/per_image_scores.csv" in artifacts

    # The report plots metric against step per method.
    from nsync_bench.report.build import build_report

    report = build_report(["test"], tracking_uri=run_options.tracking_uri, out_dir=tmp_path / "report",
                          data_root=run_options.data_root, log_to_mlflow=False, reference=False)
    assert any(p.name.startswith("learning-toy-pastel") for p in report.figures)
    assert "Learning curves — toy-pastel" in report.markdown.read_text(encoding="utf-8")

    # Uninterrupted, in a fresh store: the same curve; without at_steps: the same final result.
    run_options.runs_dir, run_options.tracking_uri = tmp_path / "fresh", f"sqlite:///{tmp_path / 'fresh.db'}"
    fresh = run(style="toy-pastel", method="ti", overrides=CURVE, options=run_options)
    assert read_curve(fresh.run_dir / "eval" / CURVE_FILE) == read_curve(run_dir / "eval" / CURVE_FILE)
    run_options.runs_dir, run_options.tracking_uri = tmp_path / "plain", f"sqlite:///{tmp_path / 'plain.db'}"
    plain = run(style="toy-pastel", method="ti", overrides=FAST, options=run_options)
    assert plain.metrics == resumed.metrics
    assert (plain.run_dir / plain.adapter).read_bytes() == (run_dir / resumed.adapter).read_bytes()
