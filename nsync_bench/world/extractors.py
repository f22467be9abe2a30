"""Metric extractors for the toy world, built on its trained probe (nsync_bench.world.probe).

The same three kinds as the real extractors, so FID/KID/CMMD/CSD run unchanged:

* ``inception`` (FID, KID): the probe's 64-d pooled features (every factor: style and content);
* ``clip`` (CMMD): the style and content embeddings side by side, L2-normalised (64-d);
* ``csd`` (CSD): the 32-d style embedding only, L2-normalised: a style descriptor that ignores
  what is drawn, as CSD's style head is meant to.

Ids start with ``toy-world-probe:`` and carry the probe file's sha256, so toy numbers never share
a cache entry or a report column with real or smoke ones.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from nsync_bench.metrics.extractors.base import FeatureExtractor
from nsync_bench.world.probe import cached_probe, probe_input
from nsync_bench.world.render import RESOLUTION

PREFIX = "toy-world-probe:"
_LAYERS = {"inception": "features-64d", "clip": "style+content-64d,l2", "csd": "style-32d,l2"}


class ToyWorldExtractor(FeatureExtractor):
    def __init__(self, kind: str, directory: Path | None = None) -> None:
        super().__init__()
        from nsync_bench.world.model import WEIGHTS_DIR

        self.kind = kind  # type: ignore[misc]  # one class serves the three kinds
        self.network, digest = cached_probe(str(directory or WEIGHTS_DIR))
        self._id = f"{PREFIX}{kind}:{_LAYERS[kind]}@sha256={digest[:12]}:pil-bicubic-{RESOLUTION},[0,1]"

    @property
    def implementation_id(self) -> str:
        return self._id

    @property
    def dim(self) -> int:
        return {"inception": 64, "clip": 64, "csd": 32}[self.kind]

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return probe_input(image)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features, style, content = self.network.embeddings(batch.to(self.device, torch.float32))
        if self.kind == "inception":
            return features
        if self.kind == "clip":
            return F.normalize(torch.cat([style, content], dim=1), dim=1)
        return F.normalize(style, dim=1)


def toy_world_extractor(kind: str) -> FeatureExtractor:
    return ToyWorldExtractor(kind)
