"""Small random-weight extractors for the offline ``smoke`` profile (docs/architecture.md, "Smoke").

Same kinds and the same preprocessing families as the real extractors, at toy sizes, so a full
run scores its images in milliseconds with no weights on disk. The weights are random (seeded,
built inside ``torch.random.fork_rng`` so the caller's RNG stream is untouched): the numbers check
the pipeline, never a method. Every ``implementation_id`` starts with ``smoke-random:`` and ends
with a hash of the parameters, so smoke features never share a cache entry with real ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from nsync_bench.metrics.extractors.base import FeatureExtractor
from nsync_bench.metrics.extractors.clip import ClipExtractor
from nsync_bench.metrics.extractors.csd import CSDExtractor, CSDNetwork
from nsync_bench.metrics.extractors.inception import pil_float_resize

SMOKE_PREFIX = "smoke-random:"
SMOKE_SEED = 0
_M = TypeVar("_M", bound=nn.Module)


def _params_digest(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def _seeded(seed: int, build: Callable[[], _M]) -> _M:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().eval()


class _TinyInceptionNet(nn.Module):
    """Three strided convs and a global average pool: a stand-in for Inception's pool3."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, dim, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        for module in self.features:  # variance-preserving init: features of order 1, not 1e-2
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                assert module.bias is not None  # every conv here is built with a bias
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - 128) / 128).flatten(1)


class SmokeInceptionExtractor(FeatureExtractor):
    """clean-fid-style preprocessing (PIL float bicubic, [0, 255]) at 64 px into a tiny CNN."""

    kind = "inception"

    def __init__(self, seed: int = SMOKE_SEED, size: int = 64, dim: int = 64) -> None:
        super().__init__()
        self.size, self._dim = size, dim
        self.network = _seeded(seed, lambda: _TinyInceptionNet(dim))
        self._id = f"{SMOKE_PREFIX}inception:tiny-cnn-{dim}d@seed={seed},params={_params_digest(self.network)}" \
                   f":pil-float-bicubic-{size}"

    @property
    def implementation_id(self) -> str:
        return self._id

    @property
    def dim(self) -> int:
        return self._dim

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(pil_float_resize(array, (self.size, self.size)).transpose((2, 0, 1)).copy())

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.network(batch.to(self.device, torch.float32)).float()


def smoke_clip(seed: int = SMOKE_SEED) -> ClipExtractor:
    """A 2-layer ``CLIPVisionModelWithProjection`` (32 px, patch 8, hidden 32, 16-d embeds)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=4, projection_dim=16)
    network = _seeded(seed, lambda: CLIPVisionModelWithProjection(config))
    return ClipExtractor(network, 32, f"{SMOKE_PREFIX}clip:tiny-vit-32px@seed={seed},"
                                      f"params={_params_digest(network)}:center-crop,pil-bicubic-32,clip-norm,l2")


def smoke_csd(seed: int = SMOKE_SEED) -> CSDExtractor:
    """The CSD architecture at toy sizes (width 32, 2 layers, 4 heads, patch 8, 32 px, 16-d)."""
    network = _seeded(seed, lambda: CSDNetwork(width=32, layers=2, heads=4, patch_size=8, image_size=32,
                                               output_dim=16))
    return CSDExtractor(network, f"{SMOKE_PREFIX}csd:tiny-vit-32px@seed={seed},params={_params_digest(network)}"
                                 ":resize32-bicubic,center-crop32,clip-norm,l2")


def smoke_extractor(kind: str, seed: int = SMOKE_SEED) -> FeatureExtractor:
    builders: dict[str, Callable[[int], FeatureExtractor]] = {
        "inception": SmokeInceptionExtractor, "clip": smoke_clip, "csd": smoke_csd}
    return builders[kind](seed)
