"""Benchmarks the project ships (``nsync-bench bench``): throughput and speed-up ratios.

Figures are measured in one process, after warm-up, and reported as medians and ratios; they
are never asserted in tests (machines differ). Sections:

* ``metrics`` — images/s of each feature extractor, and the speed-up of a second, cached
  evaluation of the same image sets (the real test set of a style is embedded once per style).
* ``training`` — per-step medians of every method (see :mod:`nsync_bench.perf.training`).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nsync_bench.config.run_config import MetricsConfig
from nsync_bench.perf.timing import time_calls


def synthetic_images(folder: Path, n: int, size: int, seed: int) -> list[Path]:
    """``n`` seeded uniform-noise RGB PNGs of ``size`` px: benchmark inputs that need no data."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def reference_random_extractors(tmp: Path) -> dict[str, Any]:
    """The reference architectures (FID Inception-v3, CLIP ViT-L/14@336, CSD ViT-L/14@224) with random
    weights: their cost on this machine is the real extractors' cost, without downloading weights."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from nsync_bench.metrics.extractors.clip import ClipExtractor
    from nsync_bench.metrics.extractors.csd import CSDExtractor, CSDNetwork
    from nsync_bench.metrics.extractors.inception import InceptionExtractor, build_fid_inception

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        path = tmp / "fid-inception-random.pth"
        torch.save(build_fid_inception().state_dict(), path)
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, patch_size=14,
            image_size=336, projection_dim=768, hidden_act="quick_gelu"))
        return {
            "inception": InceptionExtractor.from_file("legacy_pytorch", path),
            "clip": ClipExtractor(clip.eval(), 336, "bench-random:clip-vit-l-14-336"),
            "csd": CSDExtractor(CSDNetwork().eval(), "bench-random:csd-vit-l-14-224"),
        }


def extractor_throughput(extractor: Any, images: list[Path], *, batch_size: int, repeats: int = 1,
                         device: str = "cpu") -> dict[str, Any]:
    """Images/s of one extractor (preprocessing included): one batch of warm-up, then the median of ``repeats``
    passes over ``images``."""
    from nsync_bench.metrics.scoring import extract_features
    from nsync_bench.progress import NullProgress

    def extract(subset: list[Path], label: str) -> None:
        extract_features(extractor, subset, batch_size=batch_size, cache=None, progress=NullProgress(), label=label)

    extract(images[:batch_size], "warm-up")
    median = statistics.median(time_calls(lambda: extract(images, "bench"), repeats=repeats, device=device))
    return {"id": extractor.implementation_id, "median_s": median, "images_per_s": len(images) / median}


def bench_reference_extractors(*, n_images: int = 8, batch_size: int = 4, image_size: int = 256) -> dict[str, Any]:
    """Images/s of the reference architectures on this machine's CPU (random weights, same compute)."""
    results: dict[str, Any] = {"device": "cpu", "n_images": n_images, "image_size": image_size, "extractors": {}}
    with tempfile.TemporaryDirectory(prefix="nsync-bench-") as tmp:
        images = synthetic_images(Path(tmp) / "images", n_images, image_size, 0)
        for extractor in reference_random_extractors(Path(tmp)).values():
            results["extractors"][extractor.kind] = extractor_throughput(extractor, images, batch_size=batch_size)
    return results


def bench_metrics(config: MetricsConfig, *, n_images: int = 64, image_size: int = 64, repeats: int = 3,
                  weights_dir: Path | None = None) -> dict[str, Any]:
    """Extractor throughput (images/s, preprocessing included) and the cached second-evaluation speed-up."""
    from nsync_bench.metrics.scoring import extractors_for, metrics_device, score_image_sets

    device = metrics_device(config)
    results: dict[str, Any] = {"device": device, "n_images": n_images, "image_size": image_size,
                               "extractors": {}}
    with tempfile.TemporaryDirectory(prefix="nsync-bench-") as tmp:
        gen = synthetic_images(Path(tmp) / "gen", n_images, image_size, 0)
        real = synthetic_images(Path(tmp) / "real", n_images, image_size, 1)
        for extractor in extractors_for(config, weights_dir):
            results["extractors"][extractor.kind] = extractor_throughput(
                extractor, gen, batch_size=config.batch_size, repeats=repeats, device=device)
        cache = Path(tmp) / "cache"
        # Two calls on one cache: the first embeds both sets, the second reads them back.
        cold, warm = time_calls(lambda: score_image_sets(gen, real, config, weights_dir=weights_dir, cache_root=cache),
                                repeats=2, device=device)
    results["evaluation"] = {"first_s": cold, "cached_s": warm, "speedup": cold / warm}
    return results
