"""A small CNN trained on the toy world to recognise every factor of an image.

Heads for the style attributes (palette, texture incl. the novel "hatched", background, edge) and
the content (shape, colour, position). Its internal embeddings are the toy world's metric
features (nsync_bench.world.extractors): random features separate this world's styles only weakly,
a probe trained on it sees exactly the factors a style is made of. It is trained on every
attribute value, held-out targets included: it is a measuring instrument, not the base model.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from nsync_bench import seeding
from nsync_bench.errors import ModelNotAvailableError
from nsync_bench.io import file_sha256
from nsync_bench.progress import NullProgress, Progress
from nsync_bench.world import render as wr

logger = logging.getLogger(__name__)

PROBE_FILE = "probe.safetensors"
STYLE_HEADS = {"palette": wr.PALETTES, "texture": wr.TEXTURES, "background": wr.BACKGROUNDS, "edge": wr.EDGES}
CONTENT_HEADS = {"shape": wr.SHAPES, "colour": tuple(wr.COLOURS), "position": tuple(wr.POSITIONS)}
FEATURE_DIM = 64
EMBED_DIM = 32


class WorldProbe(nn.Module):
    """conv trunk -> 64-d pooled features -> 32-d style and 32-d content embeddings -> heads."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.GroupNorm(8, 32), nn.SiLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.GroupNorm(8, 64), nn.SiLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.GroupNorm(8, 64), nn.SiLU(),
            nn.Conv2d(64, FEATURE_DIM, 3, padding=1), nn.SiLU(),
        )
        # Position needs where, not only what: pool 2x2 cells before the projections.
        self.features_proj = nn.Linear(FEATURE_DIM * 4, FEATURE_DIM)
        self.style = nn.Linear(FEATURE_DIM, EMBED_DIM)
        self.content = nn.Linear(FEATURE_DIM, EMBED_DIM)
        self.heads = nn.ModuleDict(
            {name: nn.Linear(EMBED_DIM, len(values)) for name, values in {**STYLE_HEADS, **CONTENT_HEADS}.items()}
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, 3, 32, 32) in [0, 1] -> (B, 64) pooled features."""
        h = F.adaptive_avg_pool2d(self.trunk(x * 2 - 1), 2).flatten(1)
        return F.silu(self.features_proj(h))

    def embeddings(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.style(f), self.content(f)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        _, s, c = self.embeddings(x)
        out = {name: self.heads[name](s) for name in STYLE_HEADS}
        out.update({name: self.heads[name](c) for name in CONTENT_HEADS})
        return out


def all_styles() -> list[wr.WorldStyle]:
    return [wr.WorldStyle(p, t, b, e)
            for p in wr.PALETTES for t in wr.TEXTURES for b in wr.BACKGROUNDS for e in wr.EDGES]


def labelled_images(n: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    rng = seeding.numpy_rng(seed, "world-probe", "data")
    styles = all_styles()
    picks = [styles[int(i)] for i in rng.integers(len(styles), size=n)]
    contents = wr.sample_contents(rng, n)
    images = torch.cat([wr.render(contents[s:s + 2000], picks[s:s + 2000], seed=seed * 7919 + s)
                        for s in range(0, n, 2000)])
    labels = {name: torch.tensor([values.index(getattr(st, name)) for st in picks])
              for name, values in STYLE_HEADS.items()}
    labels.update({name: torch.tensor([values.index(getattr(c, name)) for c in contents])
                   for name, values in CONTENT_HEADS.items()})
    return images, labels


def train_probe(seed: int = 0, n_images: int = 16000, epochs: int = 4, progress: Progress | None = None
                ) -> tuple[WorldProbe, dict[str, float]]:
    """Train the probe on fresh renders; returns it with its held-out accuracy per head."""
    progress = progress or NullProgress()
    images, labels = labelled_images(n_images, seed)
    val_images, val_labels = labelled_images(2000, seed + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = WorldProbe()
        opt = torch.optim.AdamW(probe.parameters(), lr=2e-3, weight_decay=1e-4)
        batch = 128
        steps = epochs * (n_images // batch)
        progress.start("training the toy-world probe", total=steps)
        for _ in range(steps):
            idx = torch.randint(0, n_images, (batch,))
            x = images[idx]
            # Mild blur/noise augmentation: generated images are softer and noisier than renders.
            x = (x + 0.03 * torch.randn_like(x)).clamp(0, 1)
            out = probe(x)
            # One term per attribute head (never empty), so the sum is a tensor, not sum()'s start value 0.
            loss = cast(torch.Tensor, sum(F.cross_entropy(out[k], labels[k][idx]) for k in out))
            opt.zero_grad()
            loss.backward()
            opt.step()
            progress.advance(1, loss=float(loss.detach()))
        progress.stop()
    probe.eval()
    with torch.no_grad():
        out = probe(val_images)
    accuracy = {k: float((out[k].argmax(1) == val_labels[k]).float().mean()) for k in out}
    return probe, accuracy


def save_probe(probe: WorldProbe, directory: Path, accuracy: dict[str, float]) -> str:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PROBE_FILE
    save_file({k: v.contiguous() for k, v in probe.state_dict().items()}, str(path))
    digest = file_sha256(path)
    (directory / "probe.json").write_text(json.dumps({"sha256": digest, "val_accuracy": accuracy}, indent=2) + "\n")
    return digest


def load_probe(directory: Path) -> tuple[WorldProbe, str]:
    """The probe and its file's sha256 (checked against ``probe.json``)."""
    from safetensors.torch import load_file

    path, meta_path = directory / PROBE_FILE, directory / "probe.json"
    if not path.is_file() or not meta_path.is_file():
        raise ModelNotAvailableError(f"no toy-world probe at {path}. Fix: restore it from the repository or "
                                     "rebuild it with `nsync-bench world probe`.")
    expected, actual = json.loads(meta_path.read_text())["sha256"], file_sha256(path)
    if actual != expected:
        raise ModelNotAvailableError(f"{path} has sha256 {actual}, expected {expected}. Fix: restore it "
                                     f"(git checkout -- {path.name}) or rebuild with `nsync-bench world probe`.")
    probe = WorldProbe()
    probe.load_state_dict(load_file(str(path)), strict=True)
    return probe.eval(), actual


@cache
def cached_probe(directory: str) -> tuple[WorldProbe, str]:
    """:func:`load_probe`, once per process and folder."""
    return load_probe(Path(directory))


def probe_input(image: Image.Image) -> torch.Tensor:
    """An image as the probe reads it: RGB, 32 px (bicubic if resized), (3, 32, 32) float in [0, 1]."""
    image = image.convert("RGB")
    if image.size != (wr.RESOLUTION, wr.RESOLUTION):
        image = image.resize((wr.RESOLUTION, wr.RESOLUTION), resample=Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy())
