"""CLIP ViT-L/14@336 image embeddings for CMMD, as sayakpaul/cmmd-pytorch computes them.

Reference: ``docs/metrics.md`` §4.2 (cmmd-pytorch ``io_util.py`` + ``embedding.py``):
RGB image -> centre square crop (``top=(h-l)//2``, ``left=(w-l)//2``) -> PIL bicubic resize to
336 (antialiased) -> float32 / 255 -> CLIP mean/std normalisation -> ``CLIPVisionModelWithProjection``
-> ``image_embeds`` / ‖·‖ (float32). cmmd-pytorch's second, torch bicubic resize is an identity on
336×336 input, so it is omitted. The port skips ``.convert("RGB")``; we convert, since an RGBA
or palette image would otherwise be embedded wrongly (docs/metrics.md §4.2).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image
from torch import nn

from nsync_bench.config.run_config import CLIP_MODEL
from nsync_bench.errors import ModelNotAvailableError
from nsync_bench.metrics.extractors.base import FeatureExtractor
from nsync_bench.metrics.weights import REGISTRY, cached_sha256, weight_path
from nsync_bench.models.hub import is_offline

logger = logging.getLogger(__name__)

CLIP_WEIGHTS_NAME = "clip-vit-l-14-336"  # its entry in nsync_bench.metrics.weights
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin")


def center_crop_resize(image: Image.Image, size: int) -> Image.Image:
    """cmmd-pytorch ``_center_crop_and_resize``: largest centred square, then PIL bicubic to ``size``."""
    width, height = image.size
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    image = image.crop((left, top, left + side, top + side))
    return image.resize((size, size), resample=Image.Resampling.BICUBIC)


class ClipExtractor(FeatureExtractor):
    """L2-normalised projected CLIP image embeddings (768-d for ViT-L/14)."""

    kind = "clip"

    def __init__(self, network: nn.Module, image_size: int, implementation_id: str) -> None:
        super().__init__()
        self.network = network.eval()
        self.image_size = int(image_size)
        self._implementation_id = implementation_id
        self._mean = torch.tensor(CLIP_MEAN, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(CLIP_STD, dtype=torch.float32).view(3, 1, 1)

    @property
    def implementation_id(self) -> str:
        return self._implementation_id

    @property
    def dim(self) -> int:
        return int(cast(Any, self.network).config.projection_dim)  # a CLIPVisionModelWithProjection here

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        array = np.asarray(center_crop_resize(image.convert("RGB"), self.image_size)).astype(np.float32) / 255.0
        x = torch.from_numpy(array).permute(2, 0, 1)
        return (x - self._mean) / self._std

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            embeds = self.network(pixel_values=batch.to(self.device, torch.float32)).image_embeds
        return (embeds / torch.linalg.norm(embeds, dim=-1, keepdim=True)).float()


def _weights_digest(files: list[Path]) -> str:
    """12-hex id of the weight files: the file's sha256, or a hash over (name, sha256) when sharded."""
    if len(files) == 1:
        return cached_sha256(files[0])[:12]
    joined = "\n".join(f"{f.name}:{cached_sha256(f)}" for f in sorted(files))
    return hashlib.sha256(joined.encode()).hexdigest()[:12]


def _weight_files(directory: Path) -> list[Path]:
    found = [p for pattern in _WEIGHT_GLOBS for p in sorted(directory.glob(pattern))]
    safetensors = [p for p in found if p.suffix == ".safetensors"]
    return safetensors or found  # transformers prefers safetensors when both exist


def _hub_weight_files(repo_id: str) -> list[Path]:
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return [Path(found)]
    return []


def _not_available(model: str, reason: str, local: bool, weights_dir: str | Path | None) -> ModelNotAvailableError:
    entry = REGISTRY[CLIP_WEIGHTS_NAME]
    patterns = " ".join(entry.allow_patterns)
    copy = weight_path(CLIP_WEIGHTS_NAME, weights_dir)
    where = f"the directory {model}" if local else f"the Hugging Face cache (for {model!r}) or at {copy}"
    return ModelNotAvailableError(
        f"CMMD's CLIP model is not available in {where} ({reason}). Fix: run `nsync-bench weights fetch "
        f"{CLIP_WEIGHTS_NAME}` (it is then found automatically), or on a connected machine run "
        f"`hf download {CLIP_MODEL} {patterns} --local-dir DIR`, copy DIR here and pass "
        "`--set metrics.clip_model=DIR`."
    )


def resolve_clip_source(model: str, weights_dir: str | Path | None = None) -> tuple[str, bool]:
    """(what to load, is_local): a directory, the weights-dir copy of the default model, or a hub id."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve()), True
    if model.startswith(("/", "./", "../", "~")):
        raise _not_available(model, "no such directory", True, weights_dir)
    if model == REGISTRY[CLIP_WEIGHTS_NAME].repo_id:
        copy = weight_path(CLIP_WEIGHTS_NAME, weights_dir)
        if (copy / "config.json").is_file():
            return str(copy), True
    return model, False


def _float32() -> dict[str, Any]:
    """``dtype=float32`` under the name the installed transformers takes (``torch_dtype`` before 5)."""
    from nsync_bench.models.pretrained import dtype_kwargs

    return dtype_kwargs(torch.float32)[0]


def load_clip_extractor(
    model: str = CLIP_MODEL, *, weights_dir: str | Path | None = None, offline: bool | None = None
) -> ClipExtractor:
    """A :class:`ClipExtractor` from a hub id or a local directory (cache only when offline)."""
    from transformers import CLIPVisionModelWithProjection

    if offline is None:
        offline = is_offline()
    target, local = resolve_clip_source(model, weights_dir)
    kwargs: dict[str, Any] = {} if local else {"local_files_only": offline}
    try:
        # dtype pinned: transformers 5 defaults to the checkpoint's dtype, cmmd-pytorch ran float32.
        network = CLIPVisionModelWithProjection.from_pretrained(target, **_float32(), **kwargs)
    except (OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [""])[0][:300]
        raise _not_available(target, f"{type(err).__name__}: {first}", local, weights_dir) from err
    files = _weight_files(Path(target)) if local else _hub_weight_files(target)
    digest = _weights_digest(files) if files else "unknown"
    names = "+".join(f.name for f in files) or "?"
    size = int(cast(int, network.config.image_size))  # one int for CLIP; the annotation covers all ViT configs
    implementation_id = f"clip:{target}:{names}@sha256={digest}:center-crop,pil-bicubic-{size},clip-norm,l2"
    logger.debug("CMMD CLIP extractor %s", implementation_id)
    return ClipExtractor(network.eval(), size, implementation_id)
