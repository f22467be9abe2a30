"""Export: TI for AUTOMATIC1111/ComfyUI, LoRA in kohya's layout, diffusers; each loads back; model cards parse.

Layouts checked against the loaders' sources (named in nsync_bench/export/formats.py and the README):
AUTOMATIC1111 modules/textual_inversion/textual_inversion.py (a single-tensor safetensors file),
ComfyUI comfy/sd1_clip.py (first tensor) and comfy/lora.py (``lora_unet_`` + diffusers module path
with '.' -> '_', ``lora_down``/``lora_up``/``alpha``).
"""

import re

import numpy as np
import pytest
import torch
import yaml
from conftest import FAST
from helpers import assert_regenerates
from PIL import Image
from safetensors.torch import load_file

from nsync_bench.config.recipes import resolve_config
from nsync_bench.errors import NsyncBenchError
from nsync_bench.export.formats import export
from nsync_bench.models.diffusers_pipeline import build_pipeline
from nsync_bench.models.tiny import build_tiny_components
from nsync_bench.pipeline.generation import EvalPrompt, generate_batch, read_manifest
from nsync_bench.pipeline.runner import RunOptions, run


def read_front_matter(path):
    """The YAML front matter of a model card (what the hub and tools read)."""
    match = re.match(r"\A---\n(.*?)\n---\n", path.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None, f"{path} has no YAML front matter"
    return yaml.safe_load(match.group(1))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root):
    """One finished smoke TI run and one LoRA run, shared by the tests of this module."""
    tmp = tmp_path_factory.mktemp("export")
    options = RunOptions(runs_dir=tmp / "runs", data_root=data_root, tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
                         experiment="export")
    return {method: run(style="toy-pastel", method=method, seed=0, overrides=FAST, options=options)
            for method in ("ti", "lora")} | {"uri": options.tracking_uri}


def fresh_pipe(method):
    config = resolve_config(style="toy-pastel", method=method, seed=0, profile="smoke", overrides=FAST)
    torch.set_num_threads(config.cpu_threads)
    components = build_tiny_components(seed=config.model.tiny_seed, resolution=config.model.resolution)
    return config, build_pipeline(components)


def test_every_run_writes_a_model_card_next_to_its_adapter(runs):
    for method in ("ti", "lora"):
        result = runs[method]
        card = read_front_matter(result.run_dir / "adapter" / "README.md")
        assert card["run_key"] == result.run_key and card["method"] == method
        assert card["base_model"] == "nsync-bench/tiny-seeded" and card["license"] == "apache-2.0"
        assert card["trigger_token"] == ("sks" if method == "lora" else "<nsync-style>")
        assert card["metrics"]["fid"] == pytest.approx(result.metrics["metrics/fid"])
        assert set(card["metrics"]) >= {"fid", "kid", "cmmd", "csd"}


def test_ti_a1111_is_one_emb_params_tensor_and_regenerates_the_run(runs, tmp_path):
    result = runs["ti"]
    target = export(str(result.run_dir), "a1111", tmp_path / "out")
    assert target.name == "toy-pastel-ti-seed0.safetensors"
    tensors = load_file(str(target))
    # AUTOMATIC1111 accepts a safetensors file with exactly one tensor [n_vectors, dim]; kohya and
    # diffusers read the key emb_params; ComfyUI takes the first tensor.
    assert list(tensors) == ["emb_params"]
    learned = load_file(str(result.run_dir / "adapter" / "learned_embeds.safetensors"))["<nsync-style>"]
    assert tensors["emb_params"].shape == (1, 32) and tensors["emb_params"].dtype == torch.float32
    assert torch.equal(tensors["emb_params"], learned)

    config, pipe = fresh_pipe("ti")
    # Loaded under the run's token, the exported file reproduces the run's evaluation images exactly.
    pipe.load_textual_inversion(str(target), token="<nsync-style>")
    assert_regenerates(pipe, result.run_dir, config, "in the style of <nsync-style>")

    card = read_front_matter(target.parent / "README.md")
    assert card["trigger_token"] == "toy-pastel-ti-seed0" and card["adapter_format"] == "a1111"
    assert "embedding:toy-pastel-ti-seed0" in (target.parent / "README.md").read_text()


def test_ti_diffusers_export_is_the_runs_adapter(runs, tmp_path):
    target = export(str(runs["ti"].run_dir), "diffusers", tmp_path / "out")
    assert target.read_bytes() == (runs["ti"].run_dir / "adapter" / "learned_embeds.safetensors").read_bytes()
    assert read_front_matter(target.parent / "README.md")["adapter_format"] == "diffusers"


KOHYA_KEY = re.compile(r"lora_unet_[a-z0-9_]+\.(lora_down\.weight|lora_up\.weight|alpha)")


def test_lora_kohya_keys_map_onto_the_unet_and_regenerate_the_run(runs, tmp_path):
    result = runs["lora"]
    # Exported from the MLflow run, as a user who only has the tracking server would.
    target = export(result.mlflow_run_id, "kohya", tmp_path / "out", tracking_uri=runs["uri"])
    tensors = load_file(str(target))
    assert all(KOHYA_KEY.fullmatch(k) for k in tensors), [k for k in tensors if not KOHYA_KEY.fullmatch(k)]

    config, pipe = fresh_pipe("lora")
    # ComfyUI's map (comfy/lora.py): "lora_unet_" + diffusers module path with '.' -> '_'.
    linears = {f"lora_unet_{name.replace('.', '_')}": module for name, module in pipe.unet.named_modules()
               if isinstance(module, torch.nn.Linear)}
    bases = {k.rsplit(".", 2)[0] if k.endswith(".weight") else k.removesuffix(".alpha") for k in tensors}
    source = load_file(str(result.run_dir / "adapter" / "pytorch_lora_weights.safetensors"))
    assert len(tensors) == 3 * len(bases) and len(bases) == len(source) // 2  # every layer, with its alpha
    for base in bases:
        module = linears[base]
        down, up = tensors[f"{base}.lora_down.weight"], tensors[f"{base}.lora_up.weight"]
        assert down.shape == (4, module.in_features) and up.shape == (module.out_features, 4)
        assert tensors[f"{base}.alpha"].ndim == 0 and float(tensors[f"{base}.alpha"]) == 4.0
    assert {b.rsplit("_", 1)[-1] for b in bases} == {"q", "k", "v", "0"}  # to_q, to_k, to_v, to_out.0

    # diffusers converts kohya's layout back: the run's first evaluation images, to float tolerance.
    pipe.load_lora_weights(str(target.parent), weight_name=target.name)  # offline diffusers < 0.35 needs the name
    manifest = read_manifest(result.run_dir / "eval" / "images")[: config.eval.batch_size]
    prompts = [EvalPrompt(m.index, m.caption, m.prompt, m.seed, m.source) for m in manifest]
    for item, image in zip(manifest, generate_batch(pipe, prompts, config.eval, config.model.resolution)):
        with Image.open(result.run_dir / "eval" / "images" / item.file) as saved:
            diff = np.abs(np.asarray(image, dtype=int) - np.asarray(saved, dtype=int))
            assert diff.max() <= 1

    card = read_front_matter(target.parent / "README.md")
    assert card["trigger_token"] == "sks" and card["run_key"] == result.run_key
    assert card["metrics"]["csd"] == pytest.approx(result.metrics["metrics/csd"])


def test_export_errors_teach(runs, tmp_path):
    with pytest.raises(NsyncBenchError, match="neither a run directory nor an MLflow run id"):
        export(str(tmp_path / "missing"), "a1111", tmp_path / "out")
    with pytest.raises(NsyncBenchError, match="unknown export format 'onnx'"):
        export(str(runs["ti"].run_dir), "onnx", tmp_path / "out")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    with pytest.raises(NsyncBenchError, match="has not finished"):
        export(str(unfinished), "kohya", tmp_path / "out")
    with pytest.raises(NsyncBenchError, match="--name"):
        export(str(runs["ti"].run_dir), "a1111", tmp_path / "out", name="../evil")


def test_model_card_names_the_real_base_model_and_its_license(tmp_path):
    from nsync_bench.data.run_key import run_key
    from nsync_bench.export.model_card import card_fields, write_run_card

    for profile, base, license_id in (("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "creativeml-openrail-m"),
                                      ("sd2", "stabilityai/stable-diffusion-2-base", "openrail++")):
        config = resolve_config(style="toy-ink", method="nsync-lora", seed=1, profile=profile)
        record = {"run_key": run_key(config), "config": config.model_dump(mode="json"), "git_sha": "abc"}
        card = read_front_matter(write_run_card(tmp_path / profile, record, {"metrics/csd": 0.5, "train/loss": 1.0}))
        assert card == card_fields(record, {"metrics/csd": 0.5})
        assert (card["base_model"], card["license"], card["trigger_token"]) == (base, license_id, "sks")
        assert card["metrics"] == {"csd": 0.5} and card["run_key"] == record["run_key"]
        assert "lora" in card["tags"]
        assert 'pipe.load_lora_weights(".")' in (tmp_path / profile / "README.md").read_text()
