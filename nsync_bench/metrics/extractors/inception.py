"""Inception-v3 pool3 features (2048-d) for FID and KID, in three named modes.

Preprocessing is part of the metric (clean-fid's lesson, ``docs/metrics.md`` §2.4):

- ``clean`` — clean-fid's default: each channel resized as a float32 PIL ``'F'`` image with
  bicubic (antialiased) filtering to 299×299, clipped to [0, 255], no uint8 re-quantisation;
  network = the TorchScript TF-FID Inception (``inception-2015-12-05.pt``) called exactly as
  ``cleanfid/inception_torchscript.py::InceptionV3W`` does with ``resize_inside=False``.
- ``legacy_pytorch`` — clean-fid's pytorch-fid mode: ``F.interpolate(bilinear, align_corners=False)``
  to 299 (no antialias), clip; network = pytorch-fid's FID Inception (patched blocks) with the
  ``pt_inception-2015-12-05-6726825d.pth`` weights; input ``x/255`` then ``2x − 1``.
- ``nsync-legacy`` — what NSYNC ran (abdulfatir/gan-metrics-pytorch ``models/inception.py``,
  docs/metrics.md §2.4): torchvision's ImageNet Inception-v3 (not the FID weights, no FID patches),
  input in [0, 1], bilinear resize to 299 without antialias, ``2x − 1``, blocks up to the final
  average pool. Its numbers are not comparable with standard FID.

Weights are read without Python pickle: state dicts with ``torch.load(weights_only=True)`` and
the TorchScript archive with ``torch.jit.load``, whose C++ unpickler only rebuilds TorchScript
types and tensors (it cannot import arbitrary Python callables).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from nsync_bench.errors import unknown_name
from nsync_bench.metrics.extractors.base import FeatureExtractor
from nsync_bench.metrics.weights import WeightsError, cached_sha256

logger = logging.getLogger(__name__)

INCEPTION_SIZE = 299
MODES: dict[str, str] = {  # mode -> weights registry name (nsync_bench.metrics.weights)
    "clean": "inception-clean",
    "legacy_pytorch": "inception-fid",
    "nsync-legacy": "inception-torchvision",
}


def pil_float_resize(image: np.ndarray, size: tuple[int, int] = (INCEPTION_SIZE, INCEPTION_SIZE)) -> np.ndarray:
    """clean-fid's ``make_resizer("PIL", False, "bicubic", size)``: HWC uint8/float -> HWC float32 in [0, 255].

    Each channel goes through PIL as a 32-bit float image, so the antialiased bicubic result is
    never rounded to uint8 (``cleanfid/resize.py``).
    """
    width, height = size
    channels = []
    for idx in range(3):
        channel = Image.fromarray(np.ascontiguousarray(image[:, :, idx], dtype=np.float32))  # mode 'F'
        resized = channel.resize(size, resample=Image.Resampling.BICUBIC)
        channels.append(np.asarray(resized).clip(0, 255).reshape(height, width, 1))
    return np.concatenate(channels, axis=2).astype(np.float32)


def torch_bilinear_resize(image: np.ndarray, size: tuple[int, int] = (INCEPTION_SIZE, INCEPTION_SIZE)) -> np.ndarray:
    """clean-fid's ``make_resizer("PyTorch", False, "bilinear", size)``: no antialias, clip, float32 HWC."""
    x = torch.from_numpy(np.ascontiguousarray(image.transpose((2, 0, 1)), dtype=np.float32))[None]
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x[0].numpy().transpose((1, 2, 0)).clip(0, 255)


class _CleanInception(nn.Module):
    """``InceptionV3W.forward`` with ``resize_inside=False``: (x − 128)/128, then ``base.layers``."""

    def __init__(self, base: Any) -> None:  # clean-fid's InceptionV3W (untyped)
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != INCEPTION_SIZE or x.shape[3] != INCEPTION_SIZE:
            raise ValueError(f"clean-mode Inception expects 299×299 input, got {tuple(x.shape)}")
        return self.base.layers.forward((x - 128) / 128).view((x.shape[0], 2048))


class _BlockInception(nn.Module):
    """pytorch-fid / gan-metrics wrapper: the Inception blocks up to the final average pool."""

    def __init__(self, net: Any, input_scale: float) -> None:  # torchvision's Inception3 (untyped)
        super().__init__()
        self.input_scale = input_scale
        self.blocks = nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c, net.Mixed_6d,
            net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / self.input_scale if self.input_scale != 1.0 else x
        return self.blocks(2 * x - 1).flatten(1)


def build_fid_inception(device: str | torch.device | None = None) -> nn.Module:
    """pytorch-fid's ``fid_inception_v3()`` architecture without its download (1008 classes, FID blocks).

    The patched blocks are imported from clean-fid's copy of pytorch-fid (``cleanfid/inception_pytorch.py``).
    """
    import torchvision
    from cleanfid.inception_pytorch import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2

    with torch.device(device or "cpu"):
        net = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
        net.Mixed_5b = FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = FIDInceptionE_1(1280)
        net.Mixed_7c = FIDInceptionE_2(2048)
    return net


def build_torchvision_inception(device: str | torch.device | None = None) -> nn.Module:
    """torchvision's ImageNet Inception-v3 layout (aux head included, as its state dict has it)."""
    import torchvision

    with torch.device(device or "cpu"):
        return torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)


def _load_state_dict_into(net: nn.Module, path: Path) -> nn.Module:
    """Strictly load a plain state dict (no pickle) into ``net`` built on the meta device."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError (not a torch file), ...
        raise WeightsError(f"cannot read {path} as a weights-only torch state dict: {err}") from err
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise WeightsError(f"{path} does not fit the expected Inception architecture: {err}") from err
    return net.float().eval()


def load_inception_network(mode: str, path: Path) -> nn.Module:
    """The network of ``mode`` with weights from ``path`` (eval mode, float32, CPU)."""
    if mode == "clean":
        try:
            base = torch.jit.load(str(path), map_location="cpu")
        except Exception as err:
            raise WeightsError(f"cannot load {path} as clean-fid's TorchScript Inception: {err}") from err
        if not hasattr(base, "layers"):
            raise WeightsError(f"{path} is TorchScript but has no `layers` submodule: not inception-2015-12-05.pt")
        return _CleanInception(base.eval()).eval()
    if mode == "legacy_pytorch":
        return _BlockInception(_load_state_dict_into(build_fid_inception("meta"), path), input_scale=255.0).eval()
    if mode == "nsync-legacy":
        return _BlockInception(_load_state_dict_into(build_torchvision_inception("meta"), path), input_scale=1.0).eval()
    raise unknown_name("Inception mode", mode, MODES)


class InceptionExtractor(FeatureExtractor):
    """2048-d pool3 features; ``preprocess`` and ``embed`` follow the reference of ``mode``."""

    kind = "inception"

    def __init__(self, mode: str, network: nn.Module, implementation_id: str) -> None:
        super().__init__()
        if mode not in MODES:
            raise unknown_name("Inception mode", mode, MODES)
        self.mode = mode
        self.network = network.eval()
        self._implementation_id = implementation_id

    @classmethod
    def from_file(cls, mode: str, path: str | Path) -> InceptionExtractor:
        path = Path(path)
        if mode not in MODES:
            raise unknown_name("Inception mode", mode, MODES)
        network = load_inception_network(mode, path)
        return cls(mode, network, f"inception:{mode}:{path.name}@sha256={cached_sha256(path)[:12]}")

    @property
    def implementation_id(self) -> str:
        return self._implementation_id

    @property
    def dim(self) -> int:
        return 2048

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)
        if self.mode == "clean":  # [0, 255] float32, as clean-fid's ResizeDataset yields it
            return torch.from_numpy(pil_float_resize(array).transpose((2, 0, 1)).copy())
        if self.mode == "legacy_pytorch":
            return torch.from_numpy(torch_bilinear_resize(array).transpose((2, 0, 1)).copy())
        # gan-metrics: uint8 / 255 to float32 first, then the wrapper's bilinear resize (no clip).
        x = torch.from_numpy(array.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        return F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)[0]

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.network(batch.to(self.device, torch.float32)).float()
