"""InternVL2 captions as the released NSYNC code makes them (``src/img2txt_internvl.py``).

The pre-processing (InternVL's dynamic tiling) is plain PIL and tested; the model call needs the
real ``OpenGVLab/InternVL2-2B`` weights and its hub-side modelling code, so it cannot run in the
offline test suite. That code was written for the transformers 4.x of its release and is reported to
break from transformers 4.50 on; the captioner therefore refuses, before anything is downloaded, where
transformers is outside :data:`TRANSFORMERS_RANGE` and names the environment that works.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from PIL import Image

from nsync_bench.data.captioner import Captioner, captioner_model_id, model_not_available, pinned_revision
from nsync_bench.errors import ConfigError
from nsync_bench.models.device import resolve_device
from nsync_bench.models.hub import load_hf

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

INTERNVL2_2B = "OpenGVLab/InternVL2-2B"
QUESTION = (
    "<image>\nDescribe the visual features of image briefly, with no more than 25 words. "
    "Write it in prompt format so that I set it as a prompt."
)
"""The NSYNC prompt, verbatim (it yields short, prompt-like captions)."""
GENERATION = {"max_new_tokens": 1024, "do_sample": False}
# transformers versions InternVL2's remote code runs with: the project's floor up to (not including) 4.50.
TRANSFORMERS_RANGE = ("4.46", "4.50")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _closest_grid(aspect: float, grids: list[tuple[int, int]], width: int, height: int,
                  tile: int) -> tuple[int, int]:
    """InternVL's choice: the (cols, rows) grid whose aspect ratio is closest to the image's.

    On a tie the later (larger) grid wins only if the image has more than half its pixel area,
    so small images are not blown up into many tiles.
    """
    best_diff, best = float("inf"), (1, 1)
    area = width * height
    for grid in grids:
        diff = abs(aspect - grid[0] / grid[1])
        if diff < best_diff:
            best_diff, best = diff, grid
        elif diff == best_diff and area > 0.5 * tile * tile * grid[0] * grid[1]:
            best = grid
    return best


def dynamic_tiles(image: Image.Image, tile: int = 448, min_num: int = 1, max_num: int = 12,
                  use_thumbnail: bool = True) -> list[Image.Image]:
    """Split ``image`` into ``tile``-px squares on the grid (1..max_num tiles) closest in aspect ratio.

    Same algorithm and candidate order as InternVL's ``dynamic_preprocess`` (the candidates are
    built as a set and sorted by tile count, exactly as there, so ties resolve identically), with
    bicubic resizing. A ``tile``-px thumbnail of the whole image is appended when there is more
    than one tile.
    """
    if not 1 <= min_num <= max_num or tile < 1:
        raise ConfigError(f"dynamic_tiles needs 1 <= min_num <= max_num and tile >= 1 (got {min_num}, {max_num}, "
                          f"{tile}).")
    image = image.convert("RGB")
    width, height = image.size
    grids = sorted(
        {(i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
         if min_num <= i * j <= max_num},
        key=lambda g: g[0] * g[1],
    )
    cols, rows = _closest_grid(width / height, grids, width, height, tile)
    resized = image.resize((tile * cols, tile * rows), Image.Resampling.BICUBIC)
    tiles = [resized.crop((c * tile, r * tile, (c + 1) * tile, (r + 1) * tile))
             for r in range(rows) for c in range(cols)]
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((tile, tile), Image.Resampling.BICUBIC))
    return tiles


def check_transformers(installed: str | None = None) -> None:
    """Refuse a transformers outside :data:`TRANSFORMERS_RANGE` with the install that works."""
    from importlib.metadata import version

    from packaging.version import Version

    installed = installed or version("transformers")
    low, high = TRANSFORMERS_RANGE
    if not Version(low) <= Version(installed) < Version(high):
        raise ConfigError(
            f"the internvl captioner runs InternVL2's own modelling code, which needs transformers >= {low}, < {high} "
            f"(it is reported to break from {high} on); this environment has transformers {installed}. Fix: caption "
            f"in a separate environment with `pip install -e . 'transformers>={low},<{high}'` (nsync-bench itself "
            f"runs there too), or use `--captioner blip`, which works with any supported transformers."
        )


def pixel_values(image: Image.Image, tile: int = 448, max_num: int = 12) -> Any:
    """The ``(n_tiles, 3, tile, tile)`` float tensor InternVL's ``load_image`` builds (ImageNet-normalised)."""
    import numpy as np
    import torch

    # Tiles are already tile x tile, so InternVL's bicubic Resize((tile, tile)) is the identity here.
    arrays = [np.asarray(t, dtype=np.float32) / 255.0 for t in dynamic_tiles(image, tile=tile, max_num=max_num)]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (batch - mean) / std


class InternVLCaptioner(Captioner):
    """InternVL2 (default ``OpenGVLab/InternVL2-2B``): bf16 on CUDA, fp32 on CPU, greedy ``model.chat``.

    Security: InternVL2 ships its modelling code in the model repository, and loading it with
    ``trust_remote_code=True`` executes that Python code on this machine. Hence the explicit
    opt-in ``trust_remote_code=True`` (CLI: ``--trust-remote-code``); review the code or use a
    local copy you trust. That code targets the transformers 4.x of its release and may fail on
    newer transformers. Not covered by the offline tests (needs the 4.4 GB weights).
    """

    name = "internvl"
    batch_size = 1  # model.chat takes one image's tiles at a time

    def __init__(self, model: str = INTERNVL2_2B, device: str = "auto", trust_remote_code: bool = False,
                 max_num: int = 12, revision: str | None = None) -> None:
        if not trust_remote_code:
            raise ConfigError(
                f"the internvl captioner runs Python code downloaded with the model ({model}: "
                "trust_remote_code=True in transformers). Review that code, then opt in with "
                "`--trust-remote-code` (library: make_captioner('internvl', trust_remote_code=True)); or caption "
                "without remote code: `--captioner blip` or `--captioner template --text '...'`."
            )
        if max_num < 1:
            raise ConfigError(f"internvl: max_num must be >= 1 (got {max_num}).")
        check_transformers()
        self.model, self.max_num = model, max_num
        # Resolved now ("auto": CUDA when there is one): the dtype, and so the captions, depend on it.
        self.device: str | torch.device = str(resolve_device(device))
        settings = [] if str(self.device).startswith("cuda") else ["dtype=float32"]  # bf16 on CUDA is the reference
        settings += [f"max_num={max_num}"] if max_num != 12 else []
        self.revision = pinned_revision(model, INTERNVL2_2B, revision)
        self.model_id = captioner_model_id(model, self.revision, settings)
        self._net: Any = None
        self._tokenizer: Any = None

    def load(self) -> None:
        if self._net is not None:
            return
        import torch
        from transformers import AutoModel, AutoTokenizer

        from nsync_bench.models.pretrained import dtype_kwargs

        device = resolve_device(str(self.device))
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        transformers_dtype, _ = dtype_kwargs(dtype)

        def model_loader(target: str, **kwargs: Any) -> Any:
            return AutoModel.from_pretrained(target, trust_remote_code=True, low_cpu_mem_usage=True,
                                             **transformers_dtype, **kwargs)

        def tokenizer_loader(target: str, **kwargs: Any) -> Any:
            return AutoTokenizer.from_pretrained(target, trust_remote_code=True, use_fast=False, **kwargs)

        on_missing = partial(model_not_available, "InternVL", self.model, hub_id=INTERNVL2_2B)
        self._tokenizer, net = load_hf("InternVL", self.model, [tokenizer_loader, model_loader], on_missing,
                                       self.revision)
        self._net = net.eval().to(device)
        self._dtype, self.device = dtype, device

    def caption(self, images: list[Image.Image]) -> list[str]:
        import torch

        self.load()
        captions = []
        for image in images:
            values = pixel_values(image, max_num=self.max_num).to(self._dtype).to(self.device)
            with torch.inference_mode():
                answer = self._net.chat(self._tokenizer, values, QUESTION, dict(GENERATION))
            captions.append(str(answer).strip())
        return captions
