"""The evaluation stage of a run: generate images for the test captions, then score them.

Scores compare the generated images with the style's real test images (FID, KID, CMMD, CSD;
nsync_bench.metrics.scoring). The real set's features are cached, so every run of a style
reuses them. Per-image CSD scores go to ``per_image_scores.csv`` for paired analysis. Plug-ins' endpoints
(``nsync_bench.metrics.endpoints``, e.g. the toy world's style fidelity and leakage) are logged
beside the metrics.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from nsync_bench import paths, timeline
from nsync_bench.data.styles import StyleData, require_captions
from nsync_bench.io import atomic_open
from nsync_bench.pipeline.generation import GeneratedImage, evaluation_prompts, generate_images, image_grid
from nsync_bench.progress import Progress
from nsync_bench.tracking import schema
from nsync_bench.tracking.tracker import Tracker

if TYPE_CHECKING:
    from nsync_bench.config.run_config import RunConfig
    from nsync_bench.methods.base import Method
    from nsync_bench.metrics.scoring import ScoreReport

log = logging.getLogger(__name__)

PER_IMAGE_FILE = "per_image_scores.csv"


def evaluate(config: RunConfig, method: Method, data: StyleData, out_dir: Path,
             tracker: Tracker, progress: Progress, weights_dir: Path | None = None) -> dict[str, float]:
    """Generate the run's evaluation images (one per test caption of the run's resolved style data), score them,
    log everything; return the metrics."""
    test_images = data.test
    captions = require_captions(test_images)
    prompts = evaluation_prompts(config.run.seed, captions, [img.path.name for img in test_images],
                                 method.evaluation_prompt, config.eval.max_prompts)
    pipe = method.evaluation_pipeline()
    if pipe.device.type == "cuda" and pipe.unet.dtype != pipe.text_encoder.dtype:
        # Sampling after training: the text encoder can join the frozen modules' half precision.
        pipe.text_encoder.to(dtype=pipe.unet.dtype)
    image_dir = out_dir / "images"
    generated = generate_images(pipe, prompts, config.eval, config.model.resolution, image_dir, progress)
    timeline.mark(timeline.IMAGES_DONE)
    image_grid([image_dir / g.file for g in generated[: config.eval.grid_images]]).save(out_dir / "grid.png")
    metrics: dict[str, float] = {"eval/num_images": float(len(generated))}
    if config.metrics.names:
        report = score(config, generated, image_dir, [img.path for img in test_images], progress, weights_dir)
        timeline.mark(timeline.SCORING_DONE)
        metrics.update(log_scores(report, tracker))
        write_per_image(out_dir / PER_IMAGE_FILE, generated, report.per_image_csd)
        tracker.log_artifact(out_dir / PER_IMAGE_FILE, "eval")
    metrics.update(log_endpoints(data.info.name, generated, image_dir, tracker))
    tracker.log_metrics(metrics)
    tracker.log_artifact(image_dir / "manifest.jsonl", "eval")
    tracker.log_artifact(out_dir / "grid.png", "eval")
    tracker.log_artifact(image_dir, "eval/images")
    return metrics


def score(config: RunConfig, generated: list[GeneratedImage], image_dir: Path, real: list[Path],
          progress: Progress, weights_dir: Path | None) -> ScoreReport:
    from nsync_bench.metrics.scoring import score_image_sets

    return score_image_sets([image_dir / g.file for g in generated], real, config.metrics, weights_dir=weights_dir,
                            cache_root=paths.cache_dir() / "features", progress=progress)


def log_scores(report: ScoreReport, tracker: Tracker) -> dict[str, float]:
    """``metrics/<name>`` (+ ``metrics/<name>_std``) as metrics; direction, counts used and ids as tags."""
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    for name, result in report.results.items():
        metrics[f"metrics/{name}"] = result.value
        if result.std is not None:
            metrics[f"metrics/{name}_std"] = result.std
        # n_*_available: what the folders held, more than used where the reference drops images (nsync-legacy).
        tags.update(schema.metric_tags(name, direction=result.direction, implementation=result.implementation,
                                       n_generated=result.n_generated, n_real=result.n_real,
                                       n_generated_available=result.n_generated_available,
                                       n_real_available=result.n_real_available))
    from nsync_bench.pipeline.preflight import small_set_warnings

    for name, result in report.results.items():  # FID/KID from few images: flagged in the run and the report
        for warning in small_set_warnings([name], result.n_generated, result.n_real).values():
            tags[schema.metric_tag(name, schema.WARNING)] = warning
    tags[schema.GENERATED_IMAGES] = report.generated.note()
    tags[schema.REAL_IMAGES] = report.real.note()
    tracker.set_tags(tags)
    return metrics


def log_endpoints(style: str, generated: list[GeneratedImage], image_dir: Path, tracker: Tracker) -> dict[str, float]:
    """The registered plug-ins' endpoints (nsync_bench.metrics.endpoints) as ``metrics/<name>``, with the
    same direction, implementation and count tags as the metrics."""
    from nsync_bench.metrics.endpoints import GeneratedSet, compute_endpoints

    results = compute_endpoints(GeneratedSet(style, tuple(image_dir / g.file for g in generated),
                                             tuple(g.caption for g in generated)))
    tags: dict[str, str] = {}
    for result in results:
        tags.update(schema.metric_tags(result.name, direction=result.direction,
                                       implementation=result.implementation, n_generated=result.n_images))
    if tags:
        tracker.set_tags(tags)
    return {f"metrics/{result.name}": result.value for result in results}


def write_per_image(path: Path, generated: list[GeneratedImage], csd: list[float]) -> None:
    """One row per evaluation prompt and seed: the unit of the per-prompt paired analysis."""
    with atomic_open(path, "w", encoding="utf-8") as handle:  # the report's paired analysis reads it back
        writer = csv.writer(handle)
        writer.writerow(["index", "file", "source", "seed", "prompt", "csd"])
        for k, image in enumerate(generated):
            value = f"{csd[k]:.9g}" if k < len(csd) else ""
            writer.writerow([image.index, image.file, image.source, image.seed, image.prompt, value])
