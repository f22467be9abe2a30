"""Defaults defined once and imported everywhere: NSYNC's eps, the default experiment name, CMMD's CLIP."""

import inspect

import nsync_bench.methods
from nsync_bench import paths
from nsync_bench.config import run_config as config_module
from nsync_bench.config.recipes import resolve_config
from nsync_bench.pipeline.runner import RunOptions, experiment_name
from nsync_bench.sweep.matrix import SweepSpec


def test_nsync_eps_has_one_default():
    from nsync_bench.methods import nsync

    assert nsync.DEFAULT_EPS is config_module.DEFAULT_EPS == 1e-20
    assert config_module.NsyncConfig().eps == config_module.DEFAULT_EPS
    for function in (nsync.refine_gradient, nsync.refine_gradient_with_info):
        assert inspect.signature(function).parameters["eps"].default == config_module.DEFAULT_EPS


def test_default_experiment_name_is_defined_once():
    from nsync_bench.cli.report import DEFAULT_EXPERIMENT

    assert paths.default_experiment("sd15") == "nsync-bench-sd15"
    config = resolve_config(style="toy-pastel", method="ti", profile="smoke")
    assert experiment_name(config, RunOptions()) == paths.default_experiment("smoke")
    assert SweepSpec(styles=["toy-pastel"], methods=["ti"], seeds=[0], profile="sd2").experiment_name() == (
        paths.default_experiment("sd2"))
    assert paths.default_experiment("smoke") == DEFAULT_EXPERIMENT
    assert experiment_name(config, RunOptions(experiment="mine")) == "mine"


def test_cmmd_clip_model_is_defined_once():
    from nsync_bench.metrics.extractors.clip import load_clip_extractor
    from nsync_bench.metrics.extractors.registry import build_extractor
    from nsync_bench.metrics.weights import REGISTRY

    model = config_module.CLIP_MODEL
    assert model == "openai/clip-vit-large-patch14-336"
    assert config_module.MetricsConfig().clip_model == model
    assert inspect.signature(build_extractor).parameters["clip_model"].default == model
    assert inspect.signature(load_clip_extractor).parameters["model"].default == model
    entry = REGISTRY["clip-vit-l-14-336"]
    assert entry.repo_id == model and entry.url == f"https://huggingface.co/{model}"
    assert entry.filename == "clip-vit-large-patch14-336"


def test_the_method_registry_is_the_list_of_methods():
    assert not hasattr(nsync_bench.methods, "method_names")  # dead code removed: METHODS is the list
    assert set(nsync_bench.methods.METHODS) == {"ti", "lora", "nsync", "nsync-lora", "ldm"}
