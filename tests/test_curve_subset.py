"""The learning curve on a declared prompt subset: the first N evaluation prompts, comparable with the end."""

import json

import pytest
from conftest import FAST
from mlflow.tracking import MlflowClient

from nsync_bench import paths
from nsync_bench.config.recipes import resolve_config
from nsync_bench.data.styles import get_style, list_images
from nsync_bench.metrics.scoring import score_image_sets
from nsync_bench.pipeline.generation import read_manifest
from nsync_bench.pipeline.learning_curve import CURVE_FILE, curve_config, curve_prompt_count, read_curve
from nsync_bench.pipeline.runner import run


def test_real_profiles_declare_the_subset_and_built_in_ones_use_every_prompt():
    for profile in ("sd15", "sd2"):
        config = resolve_config(style="toy-pastel", method="ti", profile=profile)
        assert config.eval.curve_prompts == 50 and curve_prompt_count(config) == 50
        assert curve_config(config).eval.max_prompts == 50 and config.eval.max_prompts is None  # final: all
    smoke = resolve_config(style="toy-pastel", method="ti", profile="smoke")
    assert curve_prompt_count(smoke) is None and curve_config(smoke) is smoke
    capped = resolve_config(style="toy-pastel", method="ti", profile="sd15", overrides=["eval.max_prompts=20"])
    assert curve_prompt_count(capped) == 20  # never more than the final evaluation scores


@pytest.mark.slow  # end-to-end run: kept out of the fast tier
def test_curve_points_use_the_first_prompts_and_the_last_point_rescores_the_final_images(run_options, data_root):
    overrides = [*FAST, "eval.max_prompts=null", "eval.at_steps=[3]", "eval.curve_prompts=4"]
    result = run(style="toy-pastel", method="ti", profile="smoke", overrides=overrides, options=run_options)
    eval_dir = result.run_dir / "eval"
    curve_images = read_manifest(eval_dir / "steps" / "000003" / "images")
    final_images = sorted(read_manifest(eval_dir / "images"), key=lambda g: g.index)
    assert len(final_images) == 8 and len(curve_images) == 4
    assert [(g.prompt, g.seed) for g in sorted(curve_images, key=lambda g: g.index)] == \
        [(g.prompt, g.seed) for g in final_images[:4]]
    curve = read_curve(eval_dir / CURVE_FILE)
    assert sorted(curve) == [3, 6]
    config = resolve_config(style="toy-pastel", method="ti", profile="smoke", overrides=overrides)
    real = [img.path for img in list_images(data_root / "toy-pastel", get_style("toy-pastel").test_split)]
    expected = score_image_sets([eval_dir / "images" / g.file for g in final_images[:4]], real, config.metrics,
                                cache_root=paths.cache_dir() / "features")
    assert curve[6] == pytest.approx({name: r.value for name, r in expected.results.items()})
    assert curve[6]["fid"] != pytest.approx(result.metrics["metrics/fid"])  # the end point is not the 8-image score
    history = MlflowClient(run_options.tracking_uri).get_metric_history(result.mlflow_run_id, "curve/fid")
    assert sorted((m.step, round(m.value, 6)) for m in history)[-1] == (6, round(curve[6]["fid"], 6))
    assert json.loads((eval_dir / CURVE_FILE).read_text().splitlines()[-1])["step"] == 6
