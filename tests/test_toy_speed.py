"""The speed levers of the toy path: what each one changes in the images, and how it is declared.

Float-level only: the evaluation batch size (and so splitting the prompts between processes), at most
one level of an 8-bit value, rarely. Inexact and declared: ``eval.cpu_precision = "bf16"`` (part of the
run key; its measured effect on the metrics is in docs/toy-world.md). Also here: the run-key neutrality
of the new field at its old value, the sweep's progress estimate and default worker count, and the
phase marks of a run.
"""

from __future__ import annotations

import numpy as np
import pytest

from nsync_bench import timeline
from nsync_bench.config.recipes import resolve_config
from nsync_bench.config.run_config import EvalConfig
from nsync_bench.data.run_key import run_key
from nsync_bench.sweep.progress import SweepProgress, format_duration

PROMPTS = ["a red circle on the left", "a blue square at the top", "a green ring on the right",
           "a yellow triangle in the middle", "a purple square on the left"]


@pytest.fixture(scope="module")
def toy_pipe():
    from nsync_bench.models.diffusers_pipeline import build_pipeline
    from nsync_bench.world.model import load_world_components

    return build_pipeline(load_world_components())


def _images(pipe, config: EvalConfig, prompts=PROMPTS, seed: int = 7) -> np.ndarray:
    from nsync_bench.pipeline.generation import evaluation_prompts, generate_batch

    items = evaluation_prompts(seed, prompts, ["x"] * len(prompts), lambda c: f"{c} in the style of dusk poster")
    out = []
    for start in range(0, len(items), config.batch_size):
        out += [np.asarray(im) for im in generate_batch(pipe, items[start : start + config.batch_size], config, 32)]
    return np.stack(out)


def test_the_evaluation_batch_size_moves_a_pixel_by_one_level_at_most(toy_pipe):
    # Image i starts from its own latent and every UNet operation acts on each sample alone, but the CPU
    # kernels may sum in another order for another batch size: a float difference of the order of 1e-7,
    # which changes a saved 8-bit value only where it sits on a rounding boundary (measured: 1 value in
    # 25,000 moves by one level, for some batch sizes; none for others). Bound: one level, 1 value in 1,000.
    base = EvalConfig(num_inference_steps=4, guidance_scale=2.0, save_size=32)
    ones = _images(toy_pipe, base.model_copy(update={"batch_size": 1}))
    for size in (2, 5):
        diff = np.abs(ones.astype(int) - _images(toy_pipe, base.model_copy(update={"batch_size": size})))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_bf16_sampling_is_declared_and_close(toy_pipe):
    # Inexact lever: bf16 autocast changes pixels, by a few levels (measured at the toy budget: at most 13
    # of 255, a quarter of the values move); 48 is a loose bound that a broken autocast (noise, a wrong
    # dtype) exceeds by far.
    fp32 = EvalConfig(num_inference_steps=4, guidance_scale=2.0, save_size=32, batch_size=5)
    bf16 = fp32.model_copy(update={"cpu_precision": "bf16"})
    a, b = _images(toy_pipe, fp32), _images(toy_pipe, bf16)
    diff = np.abs(a.astype(int) - b)
    assert diff.max() > 0  # the knob does something
    assert diff.max() <= 48 and diff.mean() < 2
    assert np.array_equal(a, _images(toy_pipe, fp32))  # fp32 stays deterministic


def test_cpu_precision_enters_the_key_only_when_it_changes_something():
    # At fp32 (what every run did before the field existed) it stays out of the hashed config, so no
    # finished run's key changes (tests/test_run_key_frozen.py holds the smoke keys); bf16 changes the key.
    from nsync_bench.data.run_key import key_config

    config = resolve_config(style="toy-pastel", method="ti", profile="smoke")
    assert config.eval.cpu_precision == "fp32" and "cpu_precision" not in key_config(config)["eval"]
    bf16 = resolve_config(style="toy-pastel", method="ti", profile="smoke", overrides=["eval.cpu_precision=bf16"])
    assert key_config(bf16)["eval"]["cpu_precision"] == "bf16"
    assert run_key(bf16) != run_key(config)


def test_the_toy_profile_samples_in_bf16_and_smoke_does_not():
    assert resolve_config(style="world-dusk", method="ti", profile="toy").eval.cpu_precision == "bf16"
    assert resolve_config(style="toy-pastel", method="ti", profile="smoke").eval.cpu_precision == "fp32"
    # NSYNC's negative set keeps sampling in fp32 (its cache key has no precision field).
    from nsync_bench.config.run_config import NegativesConfig

    assert "cpu_precision" not in NegativesConfig.model_fields


def test_the_sweep_defaults_to_one_worker_per_core_for_one_thread_cpu_profiles(monkeypatch):
    from nsync_bench.models import cpu
    from nsync_bench.sweep.executors import default_parallel

    monkeypatch.setattr(cpu, "usable_cores", lambda: 6)
    for profile, style in (("smoke", "toy-pastel"), ("toy", "world-dusk")):
        assert default_parallel(resolve_config(style=style, method="ti", profile=profile)) == 6
    threaded = resolve_config(style="toy-pastel", method="ti", profile="smoke", overrides=["cpu_threads=2"])
    assert default_parallel(threaded) == 1  # two threads per run: one worker, no oversubscription
    assert default_parallel(resolve_config(style="monet", method="ti", profile="sd15")) == 1


def test_sweep_progress_counts_and_estimates():
    progress = SweepProgress(parallel=2)
    for k in range(5):
        progress.update(f"s/ti/seed{k}", "ti", "queued")
    progress.update("s/nsync/seed0", "nsync", "queued")
    assert progress.eta(now=0.0) is None  # nothing finished: no basis for an estimate
    progress.update("s/ti/seed0", "ti", "running", now=0.0)
    progress.update("s/ti/seed0", "ti", "finished", seconds=100.0)
    progress.update("s/ti/seed1", "ti", "skipped")
    progress.update("s/ti/seed2", "ti", "running", now=10.0)
    assert progress.counts() == {"total": 6, "done": 2, "running": 1, "queued": 3}
    # left: seed2 runs since 10 s of an expected 100 -> 40 left at t=70; seed3, seed4 100 each; nsync has no
    # run of its own yet, so it is expected to take the mean of all finished runs (100). (40+300)/2 = 170.
    assert progress.eta(now=70.0) == pytest.approx(170.0)
    progress.update("s/nsync/seed0", "nsync", "running", now=70.0)
    progress.update("s/nsync/seed0", "nsync", "finished", seconds=400.0)
    assert progress.expected("nsync") == 400.0 and progress.expected("ti") == 100.0
    # A single long run left cannot be shared between workers.
    lonely = SweepProgress(parallel=4, durations={"nsync": [400.0]})
    lonely.update("s/nsync/seed1", "nsync", "queued")
    assert lonely.eta(now=0.0) == 400.0
    assert format_duration(3725) == "1 h 02 min" and format_duration(725) == "12 min 05 s"
    assert format_duration(42.4) == "42 s"


def test_timeline_marks_only_when_asked(tmp_path, monkeypatch):
    path = tmp_path / "marks.jsonl"
    monkeypatch.delenv(timeline.ENV, raising=False)
    timeline.mark(timeline.RUN_DONE)
    assert not path.exists()
    monkeypatch.setenv(timeline.ENV, str(path))
    marker = timeline.step_marker(3)
    for step in (1, 2, 3):
        marker(step)
    timeline.mark(timeline.RUN_DONE)
    marks = timeline.read(path)
    assert list(marks) == [timeline.FIRST_STEP, timeline.TRAINING_DONE, timeline.RUN_DONE]
    assert marks[timeline.FIRST_STEP] <= marks[timeline.TRAINING_DONE] <= marks[timeline.RUN_DONE]


def test_timeline_phases_add_up():
    marks = {timeline.FIRST_STEP: 14.0, timeline.TRAINING_DONE: 20.0, timeline.IMAGES_DONE: 23.0,
             timeline.SCORING_DONE: 24.0, timeline.RUN_DONE: 25.5}
    phases = timeline.phases(10.0, marks, 26.0)
    assert phases == {"total": 16.0, "to_first_step": 4.0, "training": 6.0, "after_training": 5.5,
                      "images": 3.0, "scoring": 1.0, "logging": 1.5, "exit": 0.5}
    assert phases["to_first_step"] + phases["training"] + phases["after_training"] + phases["exit"] == 16.0
    assert timeline.phases(0.0, {}, 3.0) == {"total": 3.0, "exit": 0.0}  # a method that trains nothing


def test_the_reused_untrained_arm_is_what_the_control_generated_itself(tmp_path, data_root):
    # Exact lever: the positive control's untrained arm is now the `ldm` run (computed once per seed and
    # prompt set, reused by its run key). Its images equal, to the bit, those of the control's former own
    # path (the base model prompted "{caption} in the style of {display name}"), and so do its metric values
    # up to float32 summation order: the run may score with cached real features from another batch
    # composition or thread count, which moves values by ~1e-9 relative (seen in CI), far below rel 1e-6.
    from nsync_bench.data.styles import ensure_style_data, get_style, list_images, require_captions
    from nsync_bench.metrics.scoring import score_image_sets
    from nsync_bench.models.diffusers_pipeline import build_pipeline
    from nsync_bench.models.loading import components_for
    from nsync_bench.pipeline.generation import evaluation_prompts, generate_images
    from nsync_bench.pipeline.runner import RunOptions, run

    overrides = ["eval.max_prompts=3", "eval.num_inference_steps=3"]
    options = RunOptions(runs_dir=tmp_path / "runs", data_root=data_root, track=False)
    ldm = run(style="world-dusk", method="ldm", seed=3, profile="toy", overrides=overrides, options=options)
    assert run(style="world-dusk", method="ldm", seed=3, profile="toy", overrides=overrides, options=options).skipped

    config = resolve_config(style="world-dusk", method="ti", seed=3, profile="toy", overrides=overrides)
    style = get_style("world-dusk")
    test = list_images(ensure_style_data("world-dusk", data_root), style.test_split)
    prompts = evaluation_prompts(3, require_captions(test), [t.path.name for t in test],
                                 lambda c: f"{c} in the style of {style.display_name}", config.eval.max_prompts)
    _, _, components = components_for(config)
    own = generate_images(build_pipeline(components), prompts, config.eval, 32, tmp_path / "own")
    reused = sorted((ldm.run_dir / "eval" / "images").glob("*.png"))
    assert [p.name for p in reused] == [g.file for g in own]
    assert all(p.read_bytes() == (tmp_path / "own" / p.name).read_bytes() for p in reused)
    values = score_image_sets([tmp_path / "own" / g.file for g in own], [t.path for t in test], config.metrics)
    scored = {f"metrics/{k}": v.value for k, v in values.results.items()}
    assert set(scored) == {"metrics/fid", "metrics/kid", "metrics/cmmd", "metrics/csd"}
    # the run also logs the world's endpoints beside these
    assert scored == pytest.approx({k: ldm.metrics[k] for k in scored}, rel=1e-6, abs=0)


def test_the_spelled_out_mlflow_tag_names_are_mlflows():
    from mlflow.utils import mlflow_tags

    from nsync_bench.tracking import mlflow_ui

    for name in ("MLFLOW_SOURCE_NAME", "MLFLOW_SOURCE_TYPE", "MLFLOW_GIT_COMMIT", "MLFLOW_RUN_NOTE"):
        assert getattr(mlflow_ui, name) == getattr(mlflow_tags, name)


@pytest.mark.slow
def test_the_toy_bench_compares_both_paths_in_one_run(monkeypatch, tmp_path, data_root):
    # Shrunk (4 images of 2 sampling steps, a 3-step TI run); the ratios then mean nothing, the shape does.
    from nsync_bench.perf.toy import LEGACY, bench_toy

    monkeypatch.setenv("NSYNC_BENCH_DATA_ROOT", str(data_root))
    result = bench_toy(repeats=1, workers=2, overrides=["eval.max_prompts=4", "eval.num_inference_steps=2",
                                                        "train.max_steps=3"])
    generation, seed = result["generation"], result["seed"]
    assert result["legacy_overrides"] == LEGACY and len(result["load"]) == 2
    assert generation["images"] == 4 and generation["ratio"] > 0
    assert generation["variants"]["today"]["settings"]["cpu_precision"] == "fp32"
    assert generation["variants"]["new"]["settings"]["cpu_precision"] == "bf16"
    assert generation["pixels_today_vs_new"]["changed_fraction"] > 0  # bf16 changes pixels ...
    assert generation["parallel"]["pixels_vs_new"]["max_abs"] <= 1  # ... a split between processes does not
    assert set(generation["metric_delta"]) == {"fid", "kid", "cmmd", "csd"}
    phases = seed["variants"]["new"]["phases_s"]
    assert {"to_first_step", "training", "after_training", "images", "scoring", "exit"} <= set(phases)
    assert seed["ratio"] > 0 and {"fid", "kid", "cmmd", "csd"} <= set(seed["metric_delta"])  # + the world's endpoints
