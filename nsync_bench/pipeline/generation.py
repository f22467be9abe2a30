"""Evaluation images: one per test caption, each from a per-prompt seed derived from the run seed.

Image ``i`` starts from the initial latent drawn from stream ``(eval, i)``, the same for every
method with the same run seed (the shared-seeds contract, docs/architecture.md §3), so methods can be
compared image by image. The manifest records prompt, caption, seed and file for each image; it
is enough to regenerate any image from the adapter (:func:`nsync_bench.models.sampling.generate_batch`
with its prompts).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from nsync_bench import seeding
from nsync_bench.config.run_config import EvalConfig
from nsync_bench.io import atomic_write_text
from nsync_bench.models.sampling import EvalPrompt, generate_batch, initial_latents
from nsync_bench.progress import NullProgress, Progress

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class GeneratedImage:
    index: int
    caption: str
    prompt: str
    seed: int
    source: str
    file: str


def evaluation_prompts(run_seed: int, captions: list[str], sources: list[str], prompt_of: Any,
                       max_prompts: int | None = None) -> list[EvalPrompt]:
    """The evaluation prompts of a run: test captions in file order, seeds from stream ``eval``."""
    count = len(captions) if max_prompts is None else min(max_prompts, len(captions))
    return [
        EvalPrompt(i, captions[i], prompt_of(captions[i]), seeding.derive_seed(run_seed, seeding.EVAL, i), sources[i])
        for i in range(count)
    ]


def generate_images(
    pipe: Any,
    prompts: list[EvalPrompt],
    config: EvalConfig,
    resolution: int,
    out_dir: Path,
    progress: Progress | None = None,
) -> list[GeneratedImage]:
    """Generate every prompt's image (``config.batch_size`` per call) and write ``manifest.jsonl``."""
    progress = progress or NullProgress()
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    progress.start("generating", total=len(prompts))
    try:
        for start in range(0, len(prompts), config.batch_size):
            chunk = prompts[start : start + config.batch_size]
            for item, image in zip(chunk, generate_batch(pipe, chunk, config, resolution), strict=True):
                name = f"{item.index:05d}.png"
                image.save(out_dir / name, format="PNG")
                results.append(GeneratedImage(item.index, item.caption, item.prompt, item.seed, item.source, name))
            progress.advance(len(chunk))
    finally:
        progress.stop()
    atomic_write_text(out_dir / MANIFEST, "".join(json.dumps(asdict(row)) + "\n" for row in results))
    return results


def read_manifest(out_dir: Path) -> list[GeneratedImage]:
    with (out_dir / MANIFEST).open(encoding="utf-8") as handle:
        return [GeneratedImage(**json.loads(line)) for line in handle if line.strip()]


def image_grid(paths: list[Path], columns: int = 4, cell: int = 128) -> Image.Image:
    """A simple contact sheet of the first images (the MLflow sample-grid artifact)."""
    rows = max(1, -(-len(paths) // columns))
    grid = Image.new("RGB", (columns * cell, rows * cell), "white")
    for k, path in enumerate(paths):
        with Image.open(path) as image:
            tile = image.convert("RGB").resize((cell, cell), resample=Image.Resampling.BICUBIC)
        grid.paste(tile, ((k % columns) * cell, (k // columns) * cell))
    return grid


# EvalPrompt, generate_batch and initial_latents live in models/sampling.py (below data/, which renders
# negative sets with them); re-exported for the callers that sample evaluation images.
__all__ = ["MANIFEST", "EvalPrompt", "GeneratedImage", "evaluation_prompts", "generate_batch", "generate_images",
           "image_grid", "initial_latents", "read_manifest"]
