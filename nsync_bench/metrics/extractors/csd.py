"""CSD style embeddings (Somepalli et al. 2024, learn2phoenix/CSD ``CSD/model.py::CSD_CLIP('vit_large')``).

Reference: ``docs/metrics.md`` §5. The backbone is OpenAI CLIP's ViT-L/14 visual tower
at 224 px with ``proj`` removed, so it returns the 1024-d ``ln_post(CLS)`` feature; the style
embedding is ``normalize(feature @ last_layer_style)`` (768-d). ``last_layer_content`` is loaded
(it is in the checkpoint) but unused: the CSD authors call it a leftover (CSD#10).

The backbone is open_clip's ``VisionTransformer``, which keeps OpenAI's parameter names (conv1,
class_embedding, positional_embedding, ln_pre, transformer.resblocks.*, ln_post) and, like OpenAI's
model, skips the projection when ``proj`` is None. OpenAI CLIP uses QuickGELU; so do we.

Loading differs from the reference on purpose: CSD loads with ``strict=False``, so a wrong
checkpoint silently leaves CLIP's initial weights in place. We check the key set strictly and
never fall back to CLIP weights, and we read the file with ``weights_only=True`` (docs/architecture.md §3).

The public file (``tomg-group-umd/CSD-ViT-L``, ``pytorch_model.bin``) is a training checkpoint: beside
``model_state_dict`` it pickles the optimizer state and the run's ``argparse.Namespace``, which hold
NumPy scalars (written by NumPy 1.x as ``numpy.core.multiarray.scalar``) and dtypes. The weights-only
unpickler gets exactly those names (:func:`checkpoint_globals`): a namespace container, NumPy's
scalar-from-bytes constructor, ``numpy.dtype`` and the two dtype classes it rebuilds. None of them can
run code; anything else in a file is refused with its name.
"""

from __future__ import annotations

import argparse
import logging
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from nsync_bench.metrics.extractors.base import FeatureExtractor
from nsync_bench.metrics.weights import WeightsError, cached_sha256

logger = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HEAD_KEYS = ("last_layer_style", "last_layer_content")
CONVERTED_NAME = "csd-vit-l.safetensors"  # a user's tensors-only conversion, used when present


class CSDNetwork(nn.Module):
    """``CSD_CLIP`` with the ``'default'`` content head; ``forward`` returns the style embedding."""

    def __init__(self, *, width: int = 1024, layers: int = 24, heads: int = 16, patch_size: int = 14,
                 image_size: int = 224, output_dim: int = 768) -> None:
        super().__init__()
        from open_clip.transformer import QuickGELU, VisionTransformer

        self.image_size = image_size
        self.output_dim = output_dim
        self.backbone = VisionTransformer(
            image_size=image_size, patch_size=patch_size, width=width, layers=layers, heads=heads,
            mlp_ratio=4.0, output_dim=output_dim, act_layer=QuickGELU,
        )
        # CSD_CLIP copies proj into the heads, then sets backbone.proj = None: the backbone then
        # returns ln_post(CLS) (open_clip's forward checks `self.proj is not None`, as OpenAI's does).
        self.last_layer_style = nn.Parameter(self.backbone.proj.detach().clone())
        self.last_layer_content = nn.Parameter(self.backbone.proj.detach().clone())
        self.backbone.proj = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.backbone(x)
        return F.normalize(feature @ self.last_layer_style, dim=1, p=2)


def checkpoint_globals() -> list:
    """What the weights-only unpickler may build while reading the CSD checkpoint, besides tensors.

    ``(object, name)`` pairs make torch accept a name the object no longer has: NumPy 2 moved
    ``numpy.core`` to ``numpy._core``, and the public file was written by NumPy 1.x. Nothing here
    executes code: a plain attribute container, NumPy's scalar constructor (a dtype and raw bytes),
    ``numpy.dtype`` and the dtype classes whose state it restores.
    """
    import numpy as np

    scalar = np.float64(0).__reduce__()[0]  # NumPy's scalar-from-bytes constructor (numpy[._]core.multiarray)
    return [argparse.Namespace,
            (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"),
            np.dtype, np.dtypes.Float64DType, np.dtypes.Int64DType]


def allowed_global_names() -> set[str]:
    """The dotted names :func:`checkpoint_globals` admits (what an error message leaves out)."""
    names = set()
    for item in checkpoint_globals():
        names.add(item[1] if isinstance(item, tuple) else f"{item.__module__}.{item.__qualname__}")
    return names


def _load_weights_only(path: Path, *, mmap: bool) -> object:
    with torch.serialization.safe_globals(checkpoint_globals()):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The ``model_state_dict`` of a CSD checkpoint, ``module.`` prefixes stripped, read without pickle's
    code execution (``weights_only=True`` with :func:`checkpoint_globals`).

    CSD's training script saves ``model_state_dict`` beside its optimizer state and ``args`` (an
    ``argparse.Namespace``). A ``.safetensors`` file (e.g. a conversion of the checkpoint) is read directly.
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
        state = {k.removeprefix("model_state_dict."): v for k, v in state.items()}
    else:
        try:
            checkpoint = _load_weights_only(path, mmap=True)
        except pickle.UnpicklingError as err:
            raise WeightsError(_unsafe_message(path, err)) from err
        except RuntimeError as err:
            if "mmap" not in str(err):  # legacy (non-zip) torch files cannot be memory-mapped
                raise WeightsError(f"cannot read {path} as a torch checkpoint: {err}") from err
            try:
                checkpoint = _load_weights_only(path, mmap=False)
            except pickle.UnpicklingError as err2:
                raise WeightsError(_unsafe_message(path, err2)) from err2
        if not isinstance(checkpoint, dict) or "model_state_dict" not in checkpoint:
            keys = list(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
            raise WeightsError(
                f"{path} is not a CSD checkpoint: expected a dict with 'model_state_dict' "
                f"(as CSD's train_csd.py saves it), found {keys}."
            )
        state = checkpoint["model_state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items()}


def _unsafe_message(path: Path, err: Exception) -> str:
    allowed = allowed_global_names()
    try:
        unsafe = [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) if g not in allowed]
    except Exception:  # the listing itself may fail on odd files; the torch message still helps
        unsafe = []
    detail = f"it references Python objects {unsafe}" if unsafe else f"torch said: {str(err).splitlines()[0]}"
    return (
        f"{path} cannot be read safely: {detail}. nsync-bench only loads tensors and a few harmless containers "
        "(torch.load with weights_only=True; docs/architecture.md), never arbitrary pickled objects, because "
        "unpickling a downloaded file can run code. The public CSD checkpoint loads as is; this file is another "
        f"one. Check its sha256 against `nsync-bench weights list`, or replace it: `nsync-bench weights fetch "
        f"csd-vit-l --force`. A tensors-only conversion saved with safetensors as {path.with_name(CONVERTED_NAME)} "
        "is used instead when present (its own sha256 goes into the implementation id)."
    )


def load_csd_network(path: str | Path, **architecture: int) -> CSDNetwork:
    """Build :class:`CSDNetwork` (``architecture`` overrides the ViT-L/14 sizes) and load ``path`` strictly."""
    path = Path(path)
    state = _read_checkpoint(path)
    with torch.device("meta"):  # no random init (fast, leaves the global RNG alone): weights come next
        network = CSDNetwork(**architecture)
    expected = set(network.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise WeightsError(
            f"{path} is not the CSD checkpoint this extractor expects (CSD_CLIP('vit_large') from "
            f"tomg-group-umd/CSD-ViT-L, keys backbone.* + {', '.join(HEAD_KEYS)}): "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}. "
            "A plain CLIP checkpoint has no CSD heads; CSD weights are never replaced by CLIP weights here."
        )
    try:
        network.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise WeightsError(f"{path} has CSD keys but other tensor shapes (another architecture?): {err}") from err
    return network.float().eval()


class CSDExtractor(FeatureExtractor):
    """CSD style embeddings; preprocessing = ``CSD/loss_utils.py::transforms_branch0`` (docs/metrics.md §5.2)."""

    kind = "csd"

    def __init__(self, network: CSDNetwork, implementation_id: str) -> None:
        super().__init__()
        from torchvision import transforms

        self.network = network.eval()
        self._implementation_id = implementation_id
        size = network.image_size
        self.transform = transforms.Compose([
            transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),  # shorter side, PIL
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(mean=CLIP_MEAN, std=CLIP_STD),
        ])

    @classmethod
    def from_file(cls, path: str | Path, **architecture: int) -> CSDExtractor:
        path = Path(path)
        network = load_csd_network(path, **architecture)
        size = network.image_size
        return cls(network, f"csd:vit-l-style:{path.name}@sha256={cached_sha256(path)[:12]}:"
                            f"resize{size}-bicubic,center-crop{size},clip-norm,l2")

    @property
    def implementation_id(self) -> str:
        return self._implementation_id

    @property
    def dim(self) -> int:
        return self.network.output_dim

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image.convert("RGB"))

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.network(batch.to(self.device, torch.float32)).float()
