"""Full-size SD 1.5 / SD 2-base configs as the hub declares them, and the random-weight snapshot cache."""

import json

import pytest
import torch

from nsync_bench.models import architectures as arch
from nsync_bench.models.pretrained import load_pretrained_components


def _meta_counts(name):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    spec = arch.architecture(name)
    with torch.device("meta"):
        modules = {"unet": UNet2DConditionModel.from_config(spec["unet"]),
                   "vae": AutoencoderKL.from_config(spec["vae"]),
                   "text_encoder": CLIPTextModel(CLIPTextConfig(**spec["text_encoder"]))}
    return {k: sum(p.numel() for p in m.parameters()) for k, m in modules.items()}, modules


def test_sd15_is_full_size():
    counts, modules = _meta_counts("sd15")
    # The published sizes of SD 1.5's UNet, VAE and CLIP ViT-L/14 text encoder.
    assert counts == {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}
    attention = [n for n, _ in modules["unet"].attn_processors.items()]
    assert len(attention) == 32  # self + cross attention in all 16 transformer blocks
    assert modules["text_encoder"].config.max_position_embeddings == 77


def test_sd2_base_differs_where_the_hub_says():
    counts, _ = _meta_counts("sd2")
    spec = arch.architecture("sd2")
    assert spec["unet"]["attention_head_dim"] == [5, 10, 20, 20] and spec["unet"]["use_linear_projection"]
    assert spec["unet"]["cross_attention_dim"] == 1024 == spec["text_encoder"]["hidden_size"]
    assert spec["text_encoder"]["num_hidden_layers"] == 23 and spec["text_encoder"]["hidden_act"] == "gelu"
    assert spec["scheduler"]["prediction_type"] == "epsilon" and spec["pad_token"] == "!"
    assert 860e6 < counts["unet"] < 870e6 and 330e6 < counts["text_encoder"] < 350e6
    assert arch.config_hash("sd2") != arch.config_hash("sd15")


def test_unknown_architecture_teaches():
    from nsync_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="sd15, sd2"):
        arch.architecture("sdxl")


def test_snapshot_round_trip_and_cache(tmp_path, monkeypatch):
    # A shrunken SD-2-shaped entry: the same code path as the full-size one, in seconds.
    small = json.loads(json.dumps(arch.ARCHITECTURES["sd2"]))
    small["unet"].update(block_out_channels=[32, 64, 64, 64], attention_head_dim=[2, 4, 4, 4], cross_attention_dim=32,
                         layers_per_block=1)
    small["vae"].update(block_out_channels=[32, 32, 32, 32], layers_per_block=1)
    small["text_encoder"].update(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    monkeypatch.setitem(arch.ARCHITECTURES, "small", small)
    path = arch.random_snapshot("small", tmp_path)
    assert path.name == f"small-seed0-{arch.config_hash('small')}"
    assert json.loads((path / "unet" / "config.json").read_text())["use_linear_projection"] is True
    loaded = load_pretrained_components(str(path))
    # Saved in fp16; the loader gives an fp32 text encoder (TI trains it), UNet and VAE in fp32.
    assert {loaded.unet.dtype, loaded.vae.dtype, loaded.text_encoder.dtype} == {torch.float32}
    assert loaded.tokenizer.pad_token == "!" and len(loaded.tokenizer) == 49408
    assert type(loaded.sample_scheduler).__name__ == "PNDMScheduler"
    assert loaded.noise_scheduler.config.prediction_type == "epsilon"
    built = arch.build_random_components("small")
    for name in ("unet", "text_encoder"):
        ref, got = getattr(built, name).state_dict(), getattr(loaded, name).state_dict()
        assert all(torch.equal(ref[k].half().float(), got[k]) for k in ref)  # the same seeded weights
    mtime = (path / "model_index.json").stat().st_mtime_ns
    assert arch.random_snapshot("small", tmp_path) == path  # cached: not rebuilt
    assert (path / "model_index.json").stat().st_mtime_ns == mtime
