"""Loading base models from disk / the hub cache, and failing helpfully when they are missing."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import torch

from nsync_bench.errors import ModelNotAvailableError
from nsync_bench.models.pretrained import SD15, load_pretrained_components
from nsync_bench.models.tiny import build_tiny_components, save_components


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_components(seed=0)


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-sd") / "model"
    save_components(tiny, directory)
    return directory


def _assert_same_weights(a, b):
    for name in ("unet", "vae", "text_encoder"):
        left, right = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert left.keys() == right.keys(), name
        assert all(torch.equal(left[k], right[k]) for k in left), name


def test_hub_ids():
    assert SD15 == "stable-diffusion-v1-5/stable-diffusion-v1-5"


def test_saved_layout(saved):
    index = json.loads((saved / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None]
    for sub in ("tokenizer", "text_encoder", "unet", "vae", "scheduler"):
        assert (saved / sub).is_dir()
    assert (saved / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (saved / "tokenizer" / "vocab.json").is_file()


def test_round_trip_from_directory(tiny, saved):
    loaded = load_pretrained_components(str(saved))
    _assert_same_weights(tiny, loaded)
    assert len(loaded.tokenizer) == 49408
    assert loaded.source == str(saved.resolve())
    assert type(loaded.sample_scheduler).__name__ == "PNDMScheduler"
    assert type(loaded.noise_scheduler).__name__ == "DDPMScheduler"
    assert loaded.noise_scheduler.config.beta_end == pytest.approx(0.012)
    text = "a cat"
    assert loaded.tokenizer(text).input_ids == tiny.tokenizer(text).input_ids


def test_hub_style_tokenizer_without_tokenizer_json(saved, tmp_path):
    # Hub SD snapshots ship vocab.json + merges.txt only; that path must give the full vocabulary.
    copy = tmp_path / "model"
    shutil.copytree(saved, copy)
    (copy / "tokenizer" / "tokenizer.json").unlink(missing_ok=True)  # transformers 4 never wrote one
    loaded = load_pretrained_components(str(copy))
    assert len(loaded.tokenizer) == 49408


def test_two_token_tokenizer_rejected(saved, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(saved, copy)
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        (copy / "tokenizer" / name).unlink(missing_ok=True)
    # transformers 5 silently builds a 2-token tokenizer (caught by its size); transformers 4 refuses to load
    with pytest.raises(ModelNotAvailableError, match=r"2 tokens|tokenizer"):
        load_pretrained_components(str(copy))


def test_incomplete_directory(saved, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(saved, copy)
    shutil.rmtree(copy / "unet")
    with pytest.raises(ModelNotAvailableError, match="incomplete") as info:
        load_pretrained_components(str(copy))
    assert str(copy) in str(info.value)
    with pytest.raises(ModelNotAvailableError, match="no such directory"):
        load_pretrained_components(str(tmp_path / "missing"))


@pytest.mark.parametrize("explicit", [None, True])
def test_missing_hub_id_offline_fails_fast(monkeypatch, explicit):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model_id = "nsync-bench-test/definitely-not-a-model"
    start = time.monotonic()
    with pytest.raises(ModelNotAvailableError) as info:
        load_pretrained_components(model_id, offline=explicit)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert model_id in message
    assert f"huggingface-cli download {model_id}" in message
    assert constants.HF_HUB_CACHE in message
    assert "model.pretrained" in message
    assert info.value.__cause__ is not None


def test_hub_id_from_offline_cache(tiny, saved, tmp_path, monkeypatch):
    # A hub snapshot laid out the way `huggingface-cli download` caches it, loaded by id offline.
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--nsync-test--tiny-sd"
    shutil.copytree(saved, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    # huggingface_hub reads HF_HUB_CACHE at import time; patch the value its functions consult (and the
    # copy transformers 4 took at its import).
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    import transformers.utils.hub as transformers_hub

    for name in ("TRANSFORMERS_CACHE", "HF_HUB_CACHE", "PYTORCH_TRANSFORMERS_CACHE", "PYTORCH_PRETRAINED_BERT_CACHE"):
        if hasattr(transformers_hub, name):
            monkeypatch.setattr(transformers_hub, name, str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_pretrained_components("nsync-test/tiny-sd")
    assert loaded.source == "nsync-test/tiny-sd"
    assert len(loaded.tokenizer) == 49408
    _assert_same_weights(tiny, loaded)
    with pytest.raises(ModelNotAvailableError, match=str(tmp_path / "hub")):
        load_pretrained_components("nsync-test/tiny-sd", revision="no-such-branch")
