"""The evaluation stage of a run: generate images for the test captions, then score them.

Scoring plugs in here: each name in ``SCORERS`` maps to a callable that receives the generated
images and the style's real test images and returns metrics to log.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from nsync_bench.data.styles import StyleInfo, list_images, require_captions
from nsync_bench.generation import evaluation_prompts, generate_images, image_grid
from nsync_bench.progress import Progress
from nsync_bench.tracking import Tracker

if TYPE_CHECKING:
    from nsync_bench.config import BenchConfig
    from nsync_bench.methods.base import Method

log = logging.getLogger(__name__)


def evaluate(config: BenchConfig, method: Method, style_dir: Path, style: StyleInfo, out_dir: Path,
             tracker: Tracker, progress: Progress) -> dict[str, float]:
    """Generate the run's evaluation images, log manifest and grid; return the metrics."""
    test_images = list_images(style_dir, style.test_split)
    captions = require_captions(test_images)
    prompts = evaluation_prompts(config.run.seed, captions, [img.path.name for img in test_images],
                                 method.evaluation_prompt, config.eval.max_prompts)
    pipe = method.evaluation_pipeline()
    generated = generate_images(pipe, prompts, config.eval, config.model.resolution, out_dir / "images", progress)
    grid_paths = [out_dir / "images" / g.file for g in generated[: config.eval.grid_images]]
    image_grid(grid_paths).save(out_dir / "grid.png")
    tracker.log_artifact(out_dir / "images" / "manifest.jsonl", "eval")
    tracker.log_artifact(out_dir / "grid.png", "eval")
    tracker.log_artifact(out_dir / "images", "eval/images")
    metrics: dict[str, float] = {"eval/num_images": float(len(generated))}
    tracker.log_metrics(metrics)
    return metrics
