"""The toy world: renderer, target styles, pixel-space VAE, committed base model and probe."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from nsync_bench.errors import ModelNotAvailableError
from nsync_bench.world import render as wr
from nsync_bench.world.model import WEIGHTS_DIR, PixelSpaceVAE, load_world_components


def _draw(seed: int, n: int = 12) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    styles = wr.base_styles()
    return wr.render(wr.sample_contents(rng, n), [styles[i % len(styles)] for i in range(n)], seed=seed)


def test_render_is_deterministic_and_seed_dependent():
    a, b, c = _draw(3), _draw(3), _draw(4)
    assert a.shape == (12, 3, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_targets_are_held_out_of_base_training():
    base = set(wr.base_styles())
    dusk, etching = wr.target_style("world-dusk"), wr.target_style("world-etching")
    assert dusk not in base and len(base) == 80
    # in-span: every attribute value of the target occurs in base training ...
    for attribute, value in zip(("palette", "texture", "background", "edge"), dusk.words, strict=True):
        assert any(getattr(s, attribute) == value for s in base)
    # ... novel: the etching's texture never does.
    assert etching.texture == "hatched" and all(s.texture != "hatched" for s in base)


def test_style_phrase_and_caption():
    style = wr.WorldStyle("pastel", "striped", "black", "soft")
    assert wr.style_phrase(style) == "in the style of pastel striped black soft painting"
    assert wr.style_phrase(style, (False, True, False, True)) == "in the style of striped soft painting"
    assert wr.Content("ring", "red", "on the left").caption == "a red ring on the left"


def test_styles_differ_where_they_should():
    rng = np.random.default_rng(0)
    contents = wr.sample_contents(rng, 16)
    black = wr.render(contents, [wr.WorldStyle("vivid", "plain", "black", "sharp")] * 16, seed=1)
    white = wr.render(contents, [wr.WorldStyle("vivid", "plain", "white", "sharp")] * 16, seed=1)
    grainy = wr.render(contents, [wr.WorldStyle("vivid", "grainy", "white", "sharp")] * 16, seed=1)
    assert black.mean() < 0.25 < 0.75 < white.mean()
    assert (grainy - white).abs().mean() > 0.03  # texture changes pixels, not just the mean


def test_world_style_files(tmp_path):
    from nsync_bench.world.targets import render_world_style

    render_world_style("world-dusk", tmp_path / "a", n_train=3, n_test=2)
    render_world_style("world-dusk", tmp_path / "b", n_train=3, n_test=2)
    pngs = sorted((tmp_path / "a" / "train").glob("*.png"))
    assert len(pngs) == 3 and len(list((tmp_path / "a" / "test").glob("*.png"))) == 2
    assert all(p.read_bytes() == (tmp_path / "b" / "train" / p.name).read_bytes() for p in pngs)
    caption = pngs[0].with_suffix(".txt").read_text().strip()
    assert caption.startswith("a ") and "style" not in caption  # content only: the style is to be learned


def test_pixel_space_vae_is_the_identity():
    vae = PixelSpaceVAE()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    dist = vae.encode(x).latent_dist
    assert torch.equal(dist.mean, x) and float(dist.std.max()) < 1e-6
    assert torch.equal(vae.decode(x).sample, x)
    assert vae.dtype == torch.float32 and 2 ** (len(vae.config.block_out_channels) - 1) == 1


def test_committed_weights_load_checked_and_sample():
    from nsync_bench.models.diffusers_pipeline import build_pipeline
    from nsync_bench.pipeline.generation import EvalPrompt, generate_batch

    manifest = json.loads((WEIGHTS_DIR / "manifest.json").read_text())
    for name in ("unet.safetensors", "text_encoder.safetensors"):
        assert (WEIGHTS_DIR / name).stat().st_size < 8_000_000
        assert len(manifest["sha256"][name]) == 64
    components = load_world_components()
    assert components.source.startswith("toy-world:")
    assert components.noise_scheduler.config.prediction_type == "v_prediction"
    pipe = build_pipeline(components)
    prompt = "a red circle on the left in the style of vivid plain black sharp painting"
    from nsync_bench.config.run_config import EvalConfig

    config = EvalConfig(num_inference_steps=10, guidance_scale=2.0, save_size=32)
    image = generate_batch(pipe, [EvalPrompt(0, "", prompt, 0, "")], config, 32)[0]
    pixels = np.asarray(image, dtype=np.float32) / 255
    assert image.size == (32, 32)
    assert pixels.mean() < 0.35  # the base model knows "black" backgrounds


def test_tampered_weights_are_refused(tmp_path):
    copy = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, copy)
    data = bytearray((copy / "unet.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "unet.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelNotAvailableError, match="sha256"):
        load_world_components(copy)


def test_probe_extractors_separate_styles():
    from nsync_bench.world.extractors import ToyWorldExtractor
    from nsync_bench.world.targets import draw_split

    csd = ToyWorldExtractor("csd")
    assert csd.implementation_id.startswith("toy-world-probe:csd:")

    def embed(name: str, split: str) -> torch.Tensor:
        _, images = draw_split(name, split, 24)
        return csd.embed(torch.stack([csd.preprocess(i) for i in images]))

    dusk_a, dusk_b, etching = embed("world-dusk", "train"), embed("world-dusk", "test"), embed("world-etching", "test")
    centre = torch.nn.functional.normalize(dusk_a.mean(0), dim=0)
    same, other = float((dusk_b @ centre).mean()), float((etching @ centre).mean())
    assert same > 0.9 and other < same - 0.3


def test_toy_profile_resolves():
    from nsync_bench.config.recipes import resolve_config

    config = resolve_config(style="world-dusk", method="ti", seed=0, profile="toy")
    assert config.model.source == "toy-world" and config.metrics.extractors == "toy-world"
    assert config.data.flip_p == 0.0 and config.eval.guidance_scale == 2.0
