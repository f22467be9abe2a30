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
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nsync_bench.config.run_config import MetricsConfig


def _synthetic_images(folder: Path, n: int, size: int, seed: int) -> list[Path]:
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


def bench_reference_extractors(*, n_images: int = 8, batch_size: int = 4, image_size: int = 256) -> dict[str, Any]:
    """Images/s of the reference architectures on this machine's CPU (random weights, same compute)."""
    from nsync_bench.metrics.scoring import extract_features
    from nsync_bench.progress import NullProgress

    results: dict[str, Any] = {"device": "cpu", "n_images": n_images, "image_size": image_size, "extractors": {}}
    with tempfile.TemporaryDirectory(prefix="nsync-bench-") as tmp:
        images = _synthetic_images(Path(tmp) / "images", n_images, image_size, 0)
        for extractor in reference_random_extractors(Path(tmp)).values():
            extract_features(extractor, images[:1], batch_size=1, cache=None, progress=NullProgress(), label="warm")
            started = time.perf_counter()
            extract_features(extractor, images, batch_size=batch_size, cache=None, progress=NullProgress(),
                             label="bench")
            elapsed = time.perf_counter() - started
            results["extractors"][extractor.kind] = {"id": extractor.implementation_id, "median_s": elapsed,
                                           "images_per_s": n_images / elapsed}
    return results


def bench_metrics(config: MetricsConfig, *, n_images: int = 64, image_size: int = 64, repeats: int = 3,
                  weights_dir: Path | None = None) -> dict[str, Any]:
    """Extractor throughput (images/s, preprocessing included) and the cached second-evaluation speed-up."""
    import torch

    from nsync_bench.metrics.scoring import extract_features, extractors_for, metrics_device, score_image_sets
    from nsync_bench.progress import NullProgress

    device = metrics_device(config)
    results: dict[str, Any] = {"device": device, "n_images": n_images, "image_size": image_size,
                               "extractors": {}}
    with tempfile.TemporaryDirectory(prefix="nsync-bench-") as tmp:
        gen = _synthetic_images(Path(tmp) / "gen", n_images, image_size, 0)
        real = _synthetic_images(Path(tmp) / "real", n_images, image_size, 1)
        for extractor in extractors_for(config, weights_dir):
            extract_features(extractor, gen[: config.batch_size], batch_size=config.batch_size, cache=None,
                             progress=NullProgress(), label="warm-up")
            times = []
            for _ in range(repeats):
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                started = time.perf_counter()
                extract_features(extractor, gen, batch_size=config.batch_size, cache=None, progress=NullProgress(),
                                 label="bench")
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - started)
            median = statistics.median(times)
            results["extractors"][extractor.kind] = {"id": extractor.implementation_id, "median_s": median,
                                           "images_per_s": n_images / median}
        cache = Path(tmp) / "cache"
        started = time.perf_counter()
        score_image_sets(gen, real, config, weights_dir=weights_dir, cache_root=cache)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        score_image_sets(gen, real, config, weights_dir=weights_dir, cache_root=cache)
        warm = time.perf_counter() - started
    results["evaluation"] = {"first_s": cold, "cached_s": warm, "speedup": cold / warm}
    return results
