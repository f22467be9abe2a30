"""Training batches: images resized once, batches and flips drawn from the run's data stream."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from nsync_bench import seeding
from nsync_bench.config.run_config import DataConfig
from nsync_bench.data.pixels import load_rgb

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
}


def resize_square(image: Image.Image, resolution: int, interpolation: str, center_crop: bool) -> Image.Image:
    """Released code: a plain resize to a square (aspect not kept); optionally centre-crop first."""
    if center_crop:
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    return image.resize((resolution, resolution), resample=_RESAMPLE[interpolation])


class ImageSet:
    """Images of one split at training resolution, decoded once and kept as uint8 tensors."""

    def __init__(self, paths: list[Path], resolution: int, data: DataConfig) -> None:
        self.paths = list(paths)
        self.resolution = resolution
        self.data = data
        self._cache: dict[int, torch.Tensor] = {}
        self.latent_cache: Any = None  # a training.latents.LatentCache once attached

    def __len__(self) -> int:
        return len(self.paths)

    def pixels(self, index: int) -> torch.Tensor:
        if index not in self._cache:
            image = resize_square(load_rgb(self.paths[index]), self.resolution, self.data.interpolation,
                                  self.data.center_crop)
            array = np.asarray(image, dtype=np.uint8).copy()
            self._cache[index] = torch.from_numpy(array).permute(2, 0, 1)
        return self._cache[index]

    def stack(self, indices: list[int], flips: list[bool]) -> torch.Tensor:
        """A float batch in [-1, 1], each image flipped horizontally where ``flips`` says so."""
        tensors = []
        for index, flip in zip(indices, flips, strict=True):
            pixels = self.pixels(index)
            tensors.append(pixels.flip(-1) if flip else pixels)
        return torch.stack(tensors).float().div(127.5).sub(1.0)


@dataclass
class Batch:
    pixel_values: torch.Tensor | None
    captions: list[str]
    indices: list[int]
    flips: list[bool]
    # The VAE latent distribution of each (possibly flipped) image, when cached (training.latents).
    latent_mean: torch.Tensor | None = None
    latent_std: torch.Tensor | None = None


def make_batch(images: ImageSet, indices: list[int], flips: list[bool], captions: list[str]) -> Batch:
    """Pixels, or the cached latent parameters when the image set has a latent cache."""
    cache = images.latent_cache
    if cache is not None:
        mean, std = cache.params(indices, flips)
        return Batch(None, captions, indices, flips, mean, std)
    return Batch(images.stack(indices, flips), captions, indices, flips)


class PositiveBatches:
    """The positive batch of micro-step ``k`` as a pure function of (seed, k): see nsync_bench.seeding."""

    def __init__(self, images: ImageSet, captions: list[str], seed: int, batch_size: int) -> None:
        if len(captions) != len(images):
            raise ValueError("one caption per image is required")
        self.images = images
        self.captions = captions
        self.seed = seed
        self.batch_size = batch_size

    def batch(self, micro_step: int) -> Batch:
        indices = seeding.batch_indices(self.seed, micro_step, self.batch_size, len(self.images))
        draws = seeding.numpy_rng(self.seed, seeding.DATA, "flip", micro_step).random(self.batch_size)
        flips = [bool(d < self.images.data.flip_p) for d in draws]
        return make_batch(self.images, indices, flips, [self.captions[i] for i in indices])
