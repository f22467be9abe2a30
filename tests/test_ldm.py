"""The LDM baseline: the untrained base model, prompted with the style's human name, scored like any run."""

import json

import mlflow
import numpy as np
import pytest
import torch
from conftest import FAST
from helpers import assert_regenerates

from nsync_bench.config.recipes import resolve_config
from nsync_bench.data.styles import get_style
from nsync_bench.methods import METHODS
from nsync_bench.models.diffusers_pipeline import build_pipeline
from nsync_bench.models.tiny import build_tiny_components
from nsync_bench.pipeline.runner import run


def test_every_style_has_a_human_name():
    assert get_style("monet").display_name == "Claude Monet"
    assert get_style("vangogh").display_name == "Van Gogh"
    assert get_style("ghibli").display_name == "Studio Ghibli animation"
    for name in ("toy-pastel", "toy-ink", "illustrators"):
        assert get_style(name).display_name and get_style(name).display_name != name
    assert "ldm" in METHODS


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_ldm_run_end_to_end(run_options):
    result = run(style="toy-pastel", method="ldm", seed=0, overrides=FAST, options=run_options)
    assert not result.skipped
    for name in ("fid", "kid", "cmmd", "csd"):
        assert np.isfinite(result.metrics[f"metrics/{name}"])

    mlflow.set_tracking_uri(run_options.tracking_uri)
    row = mlflow.search_runs(experiment_names=["test"]).iloc[0]
    assert row["status"] == "FINISHED" and row["tags.method"] == "ldm" and row["tags.run_key"] == result.run_key
    assert row["tags.metric.fid.n_generated"] == "2"
    assert not (result.run_dir / "checkpoints").exists()
    record = json.loads((result.run_dir / "result.json").read_text())
    assert record["steps"] == 0
    note = json.loads((result.run_dir / result.adapter).read_text())
    assert note["trained"] is False and note["token"] == "soft pastel painting"

    # The images are the untrained base model's for "{caption} in the style of <display name>".
    config = resolve_config(style="toy-pastel", method="ldm", seed=0, profile="smoke", overrides=FAST)
    torch.set_num_threads(config.cpu_threads)
    pipe = build_pipeline(build_tiny_components(seed=config.model.tiny_seed, resolution=config.model.resolution))
    assert_regenerates(pipe, result.run_dir, config, "in the style of soft pastel painting")

    # Same seed as a TI run: the same evaluation prompts' captions and initial-latent seeds (pairable).
    ti = run(style="toy-pastel", method="ti", seed=0, overrides=FAST, options=run_options)
    ldm_manifest = (result.run_dir / "eval" / "images" / "manifest.jsonl").read_text().splitlines()
    ti_manifest = (ti.run_dir / "eval" / "images" / "manifest.jsonl").read_text().splitlines()
    pairs = [(json.loads(a), json.loads(b)) for a, b in zip(ldm_manifest, ti_manifest, strict=True)]
    assert all(a["seed"] == b["seed"] and a["caption"] == b["caption"] for a, b in pairs)
