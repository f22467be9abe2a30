"""``sweep --dry-run``: statuses from disk and sweep state, and the GPU-hour estimate."""

import json

import pytest
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.errors import ConfigError
from nsync_bench.sweep.matrix import SweepOptions, SweepSpec, TaskResult, load_sweep_file, state_path, write_state
from nsync_bench.sweep.plan import StepTimes, parse_step_time, plan_sweep


def _options(tmp_path):
    return SweepOptions(runs_dir=str(tmp_path / "runs"), data_root=str(tmp_path / "data"),
                        tracking_uri=f"sqlite:///{tmp_path / 'absent.db'}")


def test_paper_sweep_plan_counts_runs_and_estimates_hours(tmp_path):
    spec = load_sweep_file("paper")
    plan = plan_sweep(spec, _options(tmp_path), StepTimes(0.5))
    assert plan.counts() == {"start": 60}  # 4 styles x (ldm, ti, lora, nsync, nsync-lora) x 3 seeds
    hours = plan.totals_hours()
    ldm = [r for r in plan.runs if r.task.method == "ldm"]
    assert len(ldm) == 12 and all(r.train_s == 0 and r.remaining_steps == 0 and r.generate_s > 0 for r in ldm)
    # sd15 evaluates every 1000 steps (eval.at_steps) besides the end: the final evaluation's 100 images (the
    # assumed test split) plus 7 curve evaluations on the declared 50-prompt subset (eval.curve_prompts).
    ti_run = next(r for r in plan.runs if r.task.method == "ti")
    assert ti_run.generate_s == pytest.approx((100 + 7 * 50) / 100 * ldm[0].generate_s)
    assert ldm[0].generate_s == pytest.approx(100 * 0.4)  # nominal 0.4 s per image at 50 steps with CFG
    # TI at paper-code batch 4: 12 runs x 8000 steps x 0.5 s; the rest scale by ratio and batch.
    ti = sum(r.train_s for r in plan.runs if r.task.method == "ti") / 3600
    assert ti == pytest.approx(12 * 8000 * 0.5 / 3600)
    assert hours["generation"] > 0 and hours["scoring"] > 0 and hours["negative sets"] > 0
    assert hours["total"] == pytest.approx(sum(v for k, v in hours.items() if k != "total"))
    assert not (tmp_path / "absent.db").exists()  # a dry run creates no store


def test_statuses_skip_resume_retry(tmp_path):
    spec = SweepSpec(styles=["toy-ink"], methods=["ti", "lora", "nsync", "nsync-lora"], seeds=[0],
                     overrides=["train.max_steps=10"])
    options = _options(tmp_path)
    tasks = {r.task.method: r.task for r in plan_sweep(spec, options, None).runs}
    from pathlib import Path

    (Path(tasks["ti"].run_dir) / "adapter").mkdir(parents=True)
    (Path(tasks["ti"].run_dir) / "adapter" / "weights.safetensors").write_bytes(b"w")
    (Path(tasks["ti"].run_dir) / "config.json").write_text(json.dumps({"run_key": tasks["ti"].run_key, "config": {}}))
    (Path(tasks["ti"].run_dir) / "result.json").write_text(json.dumps({
        "run_key": tasks["ti"].run_key, "metrics": {"eval/num_images": 2.0}, "adapter": "adapter/weights.safetensors"}))
    (Path(tasks["nsync-lora"].run_dir)).mkdir(parents=True)
    (Path(tasks["nsync-lora"].run_dir) / "result.json").write_text("{}")  # not a result: still to start
    checkpoint = Path(tasks["lora"].run_dir) / "checkpoints" / "checkpoint-0000004"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.pt").write_bytes(b"")
    write_state(state_path(spec, options), [TaskResult(tasks["nsync"].run_key, "x", "failed")])
    plan = plan_sweep(spec, options, StepTimes(1.0))
    by_method = {r.task.method: r for r in plan.runs}
    assert {m: (r.status, r.remaining_steps) for m, r in by_method.items()} == {
        "ti": ("skip", 0), "lora": ("resume", 6), "nsync": ("retry", 10), "nsync-lora": ("start", 10)}
    assert by_method["ti"].seconds == 0
    assert by_method["lora"].train_s == pytest.approx(6 * 1.18)
    assert [r.task.method for r in plan_sweep(spec, options, None, retry_failed=True).runs] == ["nsync"]


def test_step_time_from_gpu_check_json(tmp_path):
    data = {"training": {"methods": {"ti": {"median_step_s": 0.2, "batch_size": 4},
                                     "nsync": {"median_step_s": 0.3, "batch_size": 2},
                                     "nsync-lora": {"error": "OutOfMemoryError: ..."}},
                         "generation": {"images_per_s": 2.0, "num_inference_steps": 50}},
            "extractors": {"extractors": {"clip": {"images_per_s": 100.0}}}}
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(data))
    times = parse_step_time(str(path))
    assert times.step_seconds("nsync", 4) == pytest.approx(0.6)  # measured at batch 2, linear in batch
    assert times.step_seconds("lora", 4) == pytest.approx(0.2 * 1.18)  # not measured: docs/scale.md ratio
    assert times.step_seconds("nsync-lora", 4) == pytest.approx(0.2 * 2.26)  # failed on the GPU: docs/scale.md ratio
    assert times.image_seconds(25, 7.5) == pytest.approx(0.25)
    assert times.scoring_seconds(100, ["clip"]) == pytest.approx(1.0)
    for bad in ("-1", str(tmp_path / "missing.json")):
        with pytest.raises(ConfigError, match="--step-time"):
            parse_step_time(bad)
    path.write_text("{}")
    with pytest.raises(ConfigError, match="bench --json"):
        parse_step_time(str(path))


def test_cli_dry_run_prints_count_and_estimate(tmp_path, monkeypatch):
    monkeypatch.setenv("NSYNC_BENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("NSYNC_BENCH_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    result = CliRunner().invoke(app, ["sweep", "--file", "paper", "--dry-run", "--step-time", "0.35"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "60 runs: 60 to start" in result.output
    assert "GPU-hours" in result.output
    # Before anything runs: the paper's claims (4 styles x 4 metrics per family) at the sweep's 3 seeds.
    text = " ".join(result.output.split())
    assert ("family nsync-beats-ti: 3 seeds cannot reach 0.05 with an exact test (smallest two-sided p 2/2^3 = "
            "0.25); need >= 6, or >= 10 with Holm over 16") in text
    assert not (tmp_path / "runs").exists()


def test_repeated_names_and_seeds_run_once_and_are_named(tmp_path, monkeypatch):
    """`--seeds 0,0` was one run, silently; the repeat is now said (and still one run: one task per run key)."""
    monkeypatch.setenv("NSYNC_BENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("NSYNC_BENCH_DATA_ROOT", str(tmp_path / "data"))
    result = CliRunner().invoke(app, ["sweep", "--styles", "toy-pastel,toy-pastel", "--methods", "ti,ldm,ti",
                                      "--seeds", "0,00,1", "--dry-run"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "--styles names toy-pastel more than once; each runs once." in text
    assert "--methods names ti more than once" in text and "--seeds names 0 more than once" in text
    assert "4 runs: 4 to start" in text
