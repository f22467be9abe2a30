"""Feature extractors: preprocessing against the reference code, weight loading from files the
tests write (same layouts as the official files, random weights), strict checkpoint checks, smoke.

References are called where they run offline: clean-fid's resizers, ``InceptionV3W`` and its
pytorch-fid ``InceptionV3`` (download patched to return our state dict), torchvision's own
Inception forward, transformers' ``CLIPModel.get_image_features`` and open_clip's ViT with ``proj``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from nsync_bench.errors import ModelNotAvailableError, UnknownNameError
from nsync_bench.metrics.extractors import inception as inc
from nsync_bench.metrics.extractors.clip import CLIP_MEAN, CLIP_STD, ClipExtractor, load_clip_extractor
from nsync_bench.metrics.extractors.csd import CSDExtractor, CSDNetwork
from nsync_bench.metrics.extractors.registry import build_extractor
from nsync_bench.metrics.weights import ChecksumError, WeightsError, cached_sha256, weight_path

TINY_CSD = {"width": 32, "layers": 2, "heads": 4, "patch_size": 8, "image_size": 32, "output_dim": 16}


def _image(height: int, width: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _randomize(net: nn.Module, seed: int) -> nn.Module:
    """Variance-preserving conv init and non-trivial BatchNorm statistics (so loading them matters)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
    return net.eval()


# ----- Inception ---------------------------------------------------------------------------------


class _TinyLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(48, 2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(self.pool(x).flatten(1)))[:, :, None, None]


class _TinyTorchScriptInception(nn.Module):
    """Mimics inception-2015-12-05.pt: ``layers`` on normalised 299 input, ``forward(x, return_features)``."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = _TinyLayers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.layers((x - 128) / 128).view(x.shape[0], 2048)


@pytest.fixture(scope="session")
def clean_weights_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clean-weights")
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(_TinyTorchScriptInception().eval()), str(directory / "inception-2015-12-05.pt"))
    return directory


@pytest.fixture(scope="session")
def fid_weights(tmp_path_factory):
    """A random state dict of the real pytorch-fid FID Inception architecture (~95 MB)."""
    path = tmp_path_factory.mktemp("fid") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(_randomize(inc.build_fid_inception(), 1).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def torchvision_weights(tmp_path_factory):
    """A random state dict of torchvision's inception_v3 (aux head included, ~109 MB)."""
    path = tmp_path_factory.mktemp("tv") / "inception_v3_google-0cc3c7bd.pth"
    torch.save(_randomize(inc.build_torchvision_inception(), 2).state_dict(), path)
    return path


def test_clean_resize_matches_cleanfid():
    from cleanfid.resize import make_resizer

    array = np.asarray(_image(37, 53))
    expected = make_resizer("PIL", False, "bicubic", (299, 299))(array)
    ours = inc.pil_float_resize(array)
    assert ours.dtype == np.float32 and ours.shape == (299, 299, 3)
    np.testing.assert_array_equal(ours, expected)
    assert not np.array_equal(ours, np.round(ours))  # not re-quantised


def test_legacy_resize_matches_cleanfid():
    from cleanfid.resize import make_resizer

    array = np.asarray(_image(64, 48, seed=1))
    expected = make_resizer("PyTorch", False, "bilinear", (299, 299))(array)
    np.testing.assert_array_equal(inc.torch_bilinear_resize(array), expected)


def test_clean_mode_matches_cleanfid_wrapper(clean_weights_dir):
    from cleanfid.inception_torchscript import InceptionV3W

    extractor = build_extractor("inception", source="real", inception_mode="clean", weights_dir=clean_weights_dir)
    image = _image(40, 30)
    x = extractor.preprocess(image)
    from cleanfid.resize import make_resizer

    expected_x = make_resizer("PIL", False, "bicubic", (299, 299))(np.asarray(image)).transpose((2, 0, 1))
    np.testing.assert_array_equal(x.numpy(), expected_x)
    batch = torch.stack([x, extractor.preprocess(_image(50, 50, seed=3))])
    reference = InceptionV3W(str(clean_weights_dir), download=False, resize_inside=False).eval()
    with torch.no_grad():
        expected = reference(batch)
    features = extractor.embed(batch)
    assert features.shape == (2, 2048) and extractor.dim == 2048
    torch.testing.assert_close(features, expected, rtol=0, atol=0)
    digest = cached_sha256(clean_weights_dir / "inception-2015-12-05.pt")[:12]
    assert extractor.implementation_id == f"inception:clean:inception-2015-12-05.pt@sha256={digest}"


def test_legacy_pytorch_matches_pytorch_fid_inception(fid_weights, monkeypatch):
    import cleanfid.inception_pytorch as reference

    extractor = inc.InceptionExtractor.from_file("legacy_pytorch", fid_weights)
    image = _image(256, 256, seed=4)
    x = extractor.preprocess(image)
    from cleanfid.resize import make_resizer

    expected_x = make_resizer("PyTorch", False, "bilinear", (299, 299))(np.asarray(image)).transpose((2, 0, 1))
    np.testing.assert_array_equal(x.numpy(), expected_x)
    # clean-fid's own model_fn: InceptionV3(output_blocks=[3], resize_input=False)(x / 255), with the
    # download replaced by our file.
    monkeypatch.setattr(reference, "load_state_dict_from_url",
                        lambda url, progress=False: torch.load(fid_weights, map_location="cpu", weights_only=True))
    model = reference.InceptionV3(output_blocks=[3], resize_input=False).eval()
    batch = x[None]
    with torch.no_grad():
        expected = model(batch / 255)[0].squeeze(-1).squeeze(-1)
    features = extractor.embed(batch)
    assert features.std() > 1e-3  # the random weights keep the signal alive
    torch.testing.assert_close(features, expected, rtol=1e-6, atol=1e-6)
    assert extractor.implementation_id.startswith("inception:legacy_pytorch:pt_inception-2015-12-05-6726825d.pth@")


def test_nsync_legacy_matches_torchvision_forward(torchvision_weights):
    import torchvision

    extractor = inc.InceptionExtractor.from_file("nsync-legacy", torchvision_weights)
    image = _image(256, 256, seed=5)
    x = extractor.preprocess(image)
    # gan-metrics: np.array / 255 -> F.interpolate(bilinear, align_corners=False) -> 2x - 1 -> blocks.
    raw = torch.from_numpy(np.asarray(image).astype(np.float32) / 255).permute(2, 0, 1)[None]
    resized = torch.nn.functional.interpolate(raw, size=(299, 299), mode="bilinear", align_corners=False)
    torch.testing.assert_close(x[None], resized, rtol=0, atol=0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    net.load_state_dict(torch.load(torchvision_weights, map_location="cpu", weights_only=True))
    net.fc = nn.Identity()
    with torch.no_grad():
        expected = net.eval()(2 * resized - 1)  # torchvision's forward up to avgpool (fc removed)
    features = extractor.embed(x[None])
    assert features.shape == (1, 2048) and features.std() > 1e-3
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)


def test_inception_rejects_wrong_files(torchvision_weights, tmp_path):
    with pytest.raises(WeightsError, match="does not fit"):
        inc.InceptionExtractor.from_file("legacy_pytorch", torchvision_weights)
    with pytest.raises(WeightsError, match="TorchScript"):
        inc.InceptionExtractor.from_file("clean", torchvision_weights)
    # The registry checks the torch-hub prefix: a random file under the official name is refused.
    target = weight_path("inception-torchvision", tmp_path)
    target.symlink_to(torchvision_weights)
    with pytest.raises(ChecksumError, match="0cc3c7bd"):
        build_extractor("inception", source="real", inception_mode="nsync-legacy", weights_dir=tmp_path)


def test_missing_inception_weights_teach(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="nsync-bench weights fetch inception-fid"):
        build_extractor("inception", source="real", inception_mode="legacy_pytorch", weights_dir=tmp_path)


# ----- CLIP --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    """A tiny full CLIPModel saved like the hub repo (text + vision weights, one config.json)."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config={"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": 0,
                     "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 4, "projection_dim": 16},
        projection_dim=16,
    )
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("clip")
    CLIPModel(config).eval().save_pretrained(directory)
    return directory


def test_clip_embeddings_match_clipmodel(clip_dir):
    from transformers import CLIPModel

    extractor = build_extractor("clip", source="real", clip_model=str(clip_dir))
    batch = torch.stack([extractor.preprocess(_image(40, 60, seed=s)) for s in range(3)])
    features = extractor.embed(batch)
    assert features.shape == (3, 16) and features.dtype == torch.float32 and extractor.dim == 16
    torch.testing.assert_close(features.norm(dim=1), torch.ones(3))
    full = CLIPModel.from_pretrained(clip_dir).eval()
    with torch.no_grad():
        expected = full.get_image_features(pixel_values=batch)
    expected = getattr(expected, "pooler_output", expected)
    torch.testing.assert_close(features, expected / expected.norm(dim=1, keepdim=True))
    digest = cached_sha256(clip_dir / "model.safetensors")[:12]
    assert f"model.safetensors@sha256={digest}" in extractor.implementation_id
    assert str(clip_dir.resolve()) in extractor.implementation_id


def test_clip_found_in_weights_dir(clip_dir, tmp_path):
    copy = weight_path("clip-vit-l-14-336", tmp_path)
    copy.symlink_to(clip_dir, target_is_directory=True)
    extractor = build_extractor("clip", source="real", weights_dir=tmp_path)  # default hub id
    assert extractor.dim == 16


@pytest.mark.parametrize(("width", "height"), [(50, 40), (40, 61)])
def test_clip_preprocessing(width, height):
    image = _image(height, width, seed=7)
    x = ClipExtractor(nn.Identity(), 336, "test").preprocess(image)
    assert x.shape == (3, 336, 336) and x.dtype == torch.float32
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    crop = Image.fromarray(np.asarray(image)[top : top + side, left : left + side])
    resized = np.asarray(crop.resize((336, 336), Image.Resampling.BICUBIC), dtype=np.float64) / 255
    expected = (resized - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_missing_clip_teaches(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="nsync-bench weights fetch clip-vit-l-14-336"):
        load_clip_extractor("nsync-bench-tests/no-such-model", weights_dir=tmp_path, offline=True)
    with pytest.raises(ModelNotAvailableError, match="no such directory"):
        load_clip_extractor(str(tmp_path / "missing"), weights_dir=tmp_path)


# ----- CSD ---------------------------------------------------------------------------------------


class Unsafe:
    pass


def _csd_state(seed: int = 0) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = CSDNetwork(**TINY_CSD)
        with torch.no_grad():
            network.last_layer_style.add_(torch.randn_like(network.last_layer_style))  # heads differ
    return network.state_dict()


def _save_csd(path, state, **extra):
    """CSD's train_csd.py layout: DDP's ``module.`` prefix, optimizer states, an argparse Namespace."""
    checkpoint = {"model_state_dict": {f"module.{k}": v for k, v in state.items()}, "iter": 100000,
                  "opt_bb": {"state": {}, "param_groups": []}, "args": argparse.Namespace(arch="vit_large")}
    checkpoint.update(extra)
    torch.save(checkpoint, path)
    return path


def test_csd_loads_checkpoint_and_matches_clip_projection(tmp_path):
    from open_clip.transformer import QuickGELU, VisionTransformer

    state = _csd_state()
    extractor = CSDExtractor.from_file(_save_csd(tmp_path / "pytorch_model.bin", state), **TINY_CSD)
    loaded = extractor.network.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert isinstance(extractor.network.backbone.transformer.resblocks[0].mlp.gelu, QuickGELU)
    batch = torch.stack([extractor.preprocess(_image(40, 50, seed=s)) for s in range(2)])
    features = extractor.embed(batch)
    assert features.shape == (2, 16) and extractor.dim == 16
    # Reference: a standard CLIP visual tower whose proj is the style head: ln_post(CLS) @ proj.
    tower = VisionTransformer(image_size=32, patch_size=8, width=32, layers=2, heads=4, mlp_ratio=4.0,
                              output_dim=16, act_layer=QuickGELU)
    backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    tower.load_state_dict({**backbone, "proj": state["last_layer_style"]}, strict=True)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(tower.eval()(batch), dim=1)
    torch.testing.assert_close(features, expected)
    assert extractor.implementation_id.startswith("csd:vit-l-style:pytorch_model.bin@sha256=")


def test_csd_reads_safetensors_conversion(tmp_path):
    from safetensors.torch import save_file

    state = _csd_state(seed=1)
    save_file({f"module.{k}": v.contiguous() for k, v in state.items()}, str(tmp_path / "csd-vit-l.safetensors"))
    extractor = CSDExtractor.from_file(tmp_path / "csd-vit-l.safetensors", **TINY_CSD)
    assert all(torch.equal(extractor.network.state_dict()[k], v) for k, v in state.items())


@pytest.mark.parametrize("case", ["missing-heads", "clip-only", "no-model-state-dict", "unsafe-object"])
def test_csd_rejects_wrong_checkpoints(tmp_path, case):
    state = _csd_state()
    path = tmp_path / "pytorch_model.bin"
    if case == "missing-heads":
        _save_csd(path, {k: v for k, v in state.items() if not k.startswith("last_layer")})
        match = r"2 missing keys \['last_layer_content', 'last_layer_style'\]"
    elif case == "clip-only":  # a CLIP visual tower: no backbone. prefix, proj instead of the heads
        clip_state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
        _save_csd(path, {**clip_state, "proj": state["last_layer_style"]})
        match = r"missing keys \['backbone\..*unexpected keys \['class_embedding', 'conv1.weight'"
    elif case == "no-model-state-dict":
        torch.save(state, path)
        match = "model_state_dict"
    else:
        _save_csd(path, state, extra=Unsafe())
        match = "cannot be read safely.*Unsafe.*weights_only=True"
    with pytest.raises(WeightsError, match=match):
        CSDExtractor.from_file(path, **TINY_CSD)


def test_csd_preprocessing_resize_shorter_side_then_center_crop():
    network = CSDNetwork(width=32, layers=1, heads=4, patch_size=16, image_size=224, output_dim=8)
    image = _image(200, 300, seed=8)
    x = CSDExtractor(network, "test").preprocess(image)
    assert x.shape == (3, 224, 224)
    manual = image.resize((336, 224), Image.Resampling.BICUBIC).crop((56, 0, 280, 224))
    expected = (np.asarray(manual, dtype=np.float32) / 255 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_missing_csd_weights_teach(tmp_path):
    with pytest.raises(ModelNotAvailableError) as info:
        build_extractor("csd", source="real", weights_dir=tmp_path)
    assert "huggingface.co/tomg-group-umd/CSD-ViT-L" in str(info.value)
    assert "nsync-bench weights fetch csd-vit-l" in str(info.value)


# ----- smoke and registry ------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "dim"), [("inception", 64), ("clip", 16), ("csd", 16)])
def test_smoke_extractors_are_deterministic(kind, dim):
    rng_before = torch.random.get_rng_state()
    first = build_extractor(kind, source="smoke")
    second = build_extractor(kind, source="smoke")
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    assert first.implementation_id == second.implementation_id
    assert first.implementation_id.startswith("smoke-random:")
    batch = torch.stack([first.preprocess(_image(48, 40, seed=s)) for s in range(2)])
    a, b = first.embed(batch), second.embed(batch)
    assert a.shape == (2, dim) and first.dim == dim
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a[0], a[1])


def test_registry_teaches_unknown_names():
    with pytest.raises(UnknownNameError, match="Did you mean 'inception'"):
        build_extractor("inceptoin", source="smoke")
    with pytest.raises(UnknownNameError, match="Did you mean 'nsync-legacy'"):
        build_extractor("inception", source="real", inception_mode="nsync_legacy")
    with pytest.raises(UnknownNameError, match="real, smoke"):
        build_extractor("csd", source="fake")
