"""The interface every feature extractor implements.

An extractor turns an RGB PIL image into a feature vector in two steps: :meth:`preprocess`
(on the CPU, per image: resize, crop, value range — part of the metric's identity, clean-fid's
lesson) and :meth:`embed` (a batch through the network). Its :attr:`implementation_id` names
the network, the weights (by content hash) and the preprocessing; it goes into the feature-cache
key and into MLflow, so numbers from different implementations are never mixed. Smoke
extractors (random weights) say so in their id.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from PIL import Image


class FeatureExtractor(ABC):
    kind: ClassVar[str]  # "inception", "clip" or "csd"

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    @property
    @abstractmethod
    def implementation_id(self) -> str:
        """E.g. ``inception:clean:inception-2015-12-05.pt@sha256=1a2b3c4d5e6f`` or ``smoke-random:...``."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of one feature vector."""

    @abstractmethod
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """An RGB image -> the network's input tensor (C, H, W), float32, on the CPU."""

    @abstractmethod
    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """A batch of preprocessed images (B, C, H, W) -> features (B, dim)."""

    def to(self, device: torch.device | str) -> FeatureExtractor:
        self.device = torch.device(device)
        for module in self.modules():
            module.to(self.device)
        return self

    def modules(self) -> list[torch.nn.Module]:
        """The networks to move between devices (override when there is more than one)."""
        network = getattr(self, "network", None)
        return [network] if isinstance(network, torch.nn.Module) else []
