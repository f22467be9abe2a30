"""Issue 20, item 1: diverged sampling is a failed run, never a result.

``eval.guidance_scale=1e30`` makes the sampler produce NaN; PIL turns NaN into black images that scored
like ordinary ones (FID 33.6, ...) and the run ended FINISHED. Now every sampling path — evaluation,
the learning curve, NSYNC's negative set — fails on the first non-finite batch, naming where and how
many images; ``inf`` is refused like ``nan`` for every float option.
"""

import shutil

import mlflow
import pytest
import torch
from conftest import FAST
from pydantic import BaseModel
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.config.recipes import resolve_config
from nsync_bench.config.run_config import RunConfig
from nsync_bench.data.negatives import negatives_for_config
from nsync_bench.data.styles import ensure_style_data
from nsync_bench.errors import ConfigError
from nsync_bench.pipeline.runner import RESULT_FILE, run, run_directory

DIVERGED_SAMPLER = "eval.guidance_scale=1e30"


def test_nonfinite_rows_names_each_bad_row_across_tensors():
    from nsync_bench.models.finite import nonfinite_rows

    latents = torch.zeros(4, 2, 3, 3)
    pixels = torch.zeros(4, 3, 6, 6)
    assert nonfinite_rows(latents, pixels) == []
    latents[1, 0, 2, 2] = float("nan")
    pixels[3, 2, 0, 0] = float("-inf")
    assert nonfinite_rows(latents, pixels) == [1, 3]
    pixels[1] = float("inf")  # a row bad in both tensors is counted once
    assert nonfinite_rows(latents, pixels) == [1, 3]


def _float_options(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _float_options(annotation, f"{prefix}{name}.")
        elif "float" in str(annotation):
            keys.append(f"{prefix}{name}")
    return keys


def test_inf_is_refused_like_nan_for_every_float_option():
    keys = _float_options(RunConfig)
    assert {"eval.guidance_scale", "negatives.guidance_scale", "train.learning_rate", "nsync.eps"} <= set(keys)
    for key in keys:
        for value in ("inf", "-inf", "nan"):
            with pytest.raises(ConfigError, match=rf"{key} = .*finite number"):
                resolve_config(style="toy-ink", method="ti", profile="smoke", overrides=[f"{key}={value}"])
    resolve_config(style="toy-ink", method="ti", profile="smoke", overrides=[DIVERGED_SAMPLER])  # finite: allowed


def test_a_diverged_evaluation_fails_the_run_with_no_result(tmp_path, data_root):
    """The issue's reproducer at the CLI: exit 1, one line naming the step and the count, MLflow FAILED."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sets = [arg for setting in [*FAST, DIVERGED_SAMPLER] for arg in ("--set", setting)]
    result = CliRunner().invoke(app, ["run", "--style", "toy-ink", "--method", "ti", *sets, "--runs-dir",
                                      str(tmp_path / "runs"), "--data-root", str(data_root), "--tracking-uri", uri,
                                      "--experiment", "nan"])
    message = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "the evaluation after step 6: 2 of the 2 images of a batch came out non-finite" in message
    assert "Traceback" not in result.output and "metrics/fid" not in result.output
    assert not list((tmp_path / "runs").rglob(RESULT_FILE))
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["nan"])
    assert list(runs["status"]) == ["FAILED"]
    assert "metrics.metrics/fid" not in runs


def test_a_diverged_negative_set_is_never_cached(tmp_path, data_root):
    config = resolve_config(style="toy-ink", method="nsync", profile="smoke",
                            overrides=[*FAST, "negatives.guidance_scale=1e30"])
    root = tmp_path / "data"
    shutil.copytree(ensure_style_data("toy-ink", data_root), root / "toy-ink")
    with pytest.raises(Exception, match=r"rendering the negative set of toy-ink: \d+ of the \d+ images"):
        negatives_for_config(config, root)
    assert not (root / "negatives").exists() or not any((root / "negatives").rglob("*.png"))
    assert not [p for p in (root / "negatives").rglob("*") if p.name.startswith(".tmp")]


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_a_diverged_learning_curve_evaluation_fails_the_run(run_options):
    overrides = [*FAST, DIVERGED_SAMPLER, "eval.at_steps=[3]"]
    with pytest.raises(Exception, match=r"learning-curve evaluation at step 3: 2 of the 2 images"):
        run(style="toy-ink", method="ti", seed=0, overrides=overrides, options=run_options)
    config = resolve_config(style="toy-ink", method="ti", seed=0, profile="smoke", overrides=overrides)
    assert not (run_directory(config, run_options) / RESULT_FILE).exists()
    mlflow.set_tracking_uri(run_options.tracking_uri)
    assert list(mlflow.search_runs(experiment_names=[run_options.experiment])["status"]) == ["FAILED"]
