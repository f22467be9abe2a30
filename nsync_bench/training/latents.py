"""Latent cache: each training image (and its mirror image) through the frozen VAE once.

Training samples ``z0 = mean + std * eps`` from the VAE's latent distribution at every step;
the distribution of an image never changes (the VAE is frozen), so its parameters are computed
once per (base model, resolution, preprocessing, image content) and kept on the device and on
disk. Sampling from the cached parameters with the step's noise draw gives the same latent as
encoding the image that step (training.diffusion.draw); only the VAE's cost disappears.

Each image is encoded on its own (batch of one), so its parameters do not depend on which other
images happened to share a batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from nsync_bench.io import atomic_write_bytes, file_sha256
from nsync_bench.models.components import DiffusionComponents
from nsync_bench.training.batches import ImageSet
from nsync_bench.training.diffusion import latent_distribution

log = logging.getLogger(__name__)


class LatentCache:
    def __init__(self, components: DiffusionComponents, images: ImageSet, device: torch.device,
                 cache_dir: Path | None = None) -> None:
        self.components = components
        self.images = images
        self.device = device
        self.cache_dir = cache_dir
        self.mean, self.std = self._load_or_compute()

    def key(self) -> str:
        payload = {
            "model": self.components.source,
            "vae_dtype": str(self.components.vae.dtype),
            "resolution": self.images.resolution,
            "data": self.images.data.model_dump(mode="json"),
            "files": [file_sha256(p) for p in self.images.paths],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]

    def _load_or_compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.cache_dir / f"{self.key()}.safetensors" if self.cache_dir else None
        if path is not None and path.is_file():
            cached = self._load(path, 2 * len(self.images))
            if cached is not None:
                return cached[0].to(self.device), cached[1].to(self.device)
        means, stds = [], []
        for index in range(len(self.images)):
            for flip in (False, True):  # row 2*i + flip
                mean, std = latent_distribution(self.components, self.images.stack([index], [flip]))
                means.append(mean[0])
                stds.append(std[0])
        mean, std = torch.stack(means), torch.stack(stds)
        if path is not None:
            self._save(path, mean, std)
        log.info("encoded %d training images (and mirrors) into the latent cache", len(self.images))
        return mean.to(self.device), std.to(self.device)

    @staticmethod
    def _load(path: Path, rows: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A cache entry that reads back whole (both tensors, one row per image and mirror, finite), else None:
        a damaged entry is removed with a warning and encoded again."""
        try:
            tensors = load_file(str(path))
            mean, std = tensors["mean"], tensors["std"]
            whole = mean.shape == std.shape and mean.shape[0] == rows and bool(torch.isfinite(mean).all()) \
                and bool(torch.isfinite(std).all())
        except Exception as err:  # safetensors raises its own error type for a torn file
            whole, mean, std = False, None, None
            log.debug("latent cache entry %s: %s", path, err)
        if not whole or mean is None or std is None:
            log.warning("latent cache entry %s is damaged; removed, the training images are encoded again", path)
            path.unlink(missing_ok=True)
            return None
        return mean, std

    @staticmethod
    def _save(path: Path, mean: torch.Tensor, std: torch.Tensor) -> None:
        atomic_write_bytes(path, save({"mean": mean.cpu().contiguous(), "std": std.cpu().contiguous()}))

    def params(self, indices: list[int], flips: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.tensor([2 * i + int(f) for i, f in zip(indices, flips, strict=True)], device=self.mean.device)
        return self.mean.index_select(0, rows), self.std.index_select(0, rows)
