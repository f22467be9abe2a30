"""Score a set of generated images against real ones with FID, KID, CMMD and CSD.

Features are extracted once per (extractor, image set) and cached on disk (metrics.cache), so
the real test set of a style is embedded once and reused by every run. Each result carries its
direction, the numbers of images used and an implementation id naming estimator, network,
weights and preprocessing: numbers with different ids are not comparable.

Which metrics exist, and each one's direction, feature kind, estimator id and computation, is
declared by the metric's own module (its ``SPEC``, see metrics.spec) and listed in metrics.registry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from nsync_bench.config.run_config import MetricsConfig
from nsync_bench.data.pixels import load_rgb
from nsync_bench.errors import DataError
from nsync_bench.metrics.cache import FeatureCache, cache_key
from nsync_bench.metrics.extractors.base import FeatureExtractor
from nsync_bench.metrics.images import ImageSetInfo, inventory
from nsync_bench.metrics.registry import extractor_kinds, specs
from nsync_bench.progress import NullProgress, Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricResult:
    name: str
    value: float
    std: float | None
    direction: Literal["lower", "higher"]
    n_generated: int  # images the metric actually used
    n_real: int
    implementation: str
    # Images in each set; more than used only where the reference drops some (nsync-legacy FID/KID).
    n_generated_available: int = -1
    n_real_available: int = -1

    def __post_init__(self) -> None:
        if self.n_generated_available < 0:
            object.__setattr__(self, "n_generated_available", self.n_generated)
        if self.n_real_available < 0:
            object.__setattr__(self, "n_real_available", self.n_real)


@dataclass
class ScoreReport:
    results: dict[str, MetricResult] = field(default_factory=dict)
    per_image_csd: list[float] = field(default_factory=list)
    generated: ImageSetInfo = field(default_factory=ImageSetInfo)
    real: ImageSetInfo = field(default_factory=ImageSetInfo)
    cache_hits: int = 0
    cache_misses: int = 0


def extract_features(extractor, files: list[Path], *, batch_size: int, cache: FeatureCache | None,
                     progress: Progress, label: str) -> np.ndarray:
    """Features (n, d) in float64 for ``files`` in order, from the cache when the key matches."""
    import torch

    key = cache_key(extractor.implementation_id, files) if cache is not None else ""
    if cache is not None:
        cached = cache.get(extractor.kind, key, rows=len(files))
        if cached is not None:
            return cached
    chunks = []
    progress.start(f"{extractor.kind} features: {label}", total=len(files))
    try:
        for start in range(0, len(files), batch_size):
            batch_files = files[start : start + batch_size]
            batch = torch.stack([extractor.preprocess(load_rgb(p)) for p in batch_files])
            with torch.inference_mode():
                chunks.append(extractor.embed(batch.to(extractor.device)).double().cpu().numpy())
            progress.advance(len(batch_files))
    finally:
        progress.stop()
    features = np.concatenate(chunks)
    if not np.isfinite(features).all():
        raise ValueError(f"{extractor.implementation_id} produced non-finite features for {label}")
    if cache is not None:
        cache.put(extractor.kind, key, features, files)
    return features


def metrics_device(config: MetricsConfig) -> str:
    """The extractors' device as a string (``cpu``, ``cuda``), through the one device resolver."""
    from nsync_bench.models.device import resolve_device

    return str(resolve_device(config.device))


def extractors_for(config: MetricsConfig, weights_dir: Path | None = None) -> Iterator[FeatureExtractor]:
    """One extractor per feature kind that ``config.names`` needs (built one at a time: each may be large)."""
    from nsync_bench.metrics.extractors.registry import build_extractor

    device = metrics_device(config)
    for kind in sorted(extractor_kinds(config.names)):
        yield build_extractor(kind, source=config.extractors, inception_mode=config.inception_mode,
                              weights_dir=weights_dir, clip_model=config.clip_model, device=device)


def _check_set_sizes(names: Sequence[str], generated: list[Path], real: list[Path]) -> None:
    """FID and KID need two images per set (their specs' ``min_images``): say so in the user's terms (not the
    estimator's "feats_a")."""
    table = specs()
    for label, files in (("generated (first)", generated), ("real (second)", real)):
        needy = [n for n in names if len(files) < table[n].min_images]
        if needy:
            where = f" in {files[0].parent}" if files else ""
            least = max(table[n].min_images for n in needy)
            raise DataError(f"the {label} image set has {len(files)} image(s){where}, but "
                            f"{'/'.join(n.upper() for n in needy)} need at least {least} per set (a covariance needs "
                            "two samples). Add images, or choose other metrics (e.g. --metrics cmmd,csd).")


def score_image_sets(
    generated: list[Path],
    real: list[Path],
    config: MetricsConfig,
    *,
    weights_dir: Path | None = None,
    cache_root: Path | None = None,
    progress: Progress | None = None,
) -> ScoreReport:
    """Compute ``config.names`` for ``generated`` against ``real`` (lists of image files)."""
    _check_set_sizes(config.names, generated, real)
    progress = progress or NullProgress()
    cache = FeatureCache(cache_root) if cache_root is not None else None
    report = ScoreReport(generated=inventory(generated), real=inventory(real))
    features: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
    for extractor in extractors_for(config, weights_dir):
        gen = extract_features(extractor, generated, batch_size=config.batch_size, cache=cache, progress=progress,
                               label="generated")
        ref = extract_features(extractor, real, batch_size=config.batch_size, cache=cache, progress=progress,
                               label="real")
        features[extractor.kind] = (gen, ref, extractor.implementation_id)

    n_gen, n_real = len(generated), len(real)
    table = specs()
    for name in config.names:
        spec = table[name]
        gen, ref, extractor_id = features[spec.extractor]
        score = spec.score(gen, ref, config)
        if score.per_image is not None:  # CSD: its per-image scores are paired by prompt and seed in reports
            report.per_image_csd = [float(s) for s in score.per_image]
        std = None if score.std is None else float(score.std)
        report.results[name] = MetricResult(name, float(score.value), std, spec.direction, score.n_generated,
                                            score.n_real, f"{spec.estimator_id(config)}|{extractor_id}", n_gen, n_real)
    if cache is not None:
        report.cache_hits, report.cache_misses = cache.hits, cache.misses
    return report
