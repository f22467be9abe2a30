"""The real-data floor: each metric between a style's real train and test images.

What a perfect method would score at the benchmark's sample size: a run scores its n generated
images against the style's real test images, so the floor scores n real *training* images (a
seeded sample of the train split, n = the runs' ``n_generated``; all of them when the split is
smaller) against the same test images, with the same scoring code and metric settings
(:func:`nsync_bench.metrics.scoring.score_image_sets`). FID, KID and CMMD of finite samples are
biased upwards, so the floor is not 0 and no method should be read against 0.

Computed once per (style, image sets, metric settings) — the *reference key* — and logged to
MLflow as a run tagged ``nsync_bench.kind = reference``, ``method = real-data``, ``style``,
``profile`` and ``reference_key``, with ``metrics/<name>`` and the same ``metric.<name>.*`` tags as
a benchmark run. It carries no ``run_key`` tag, so it never counts as a method run (sweeps, the
report's comparisons); the report reads it as a reference row.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nsync_bench import paths
from nsync_bench.config.run_config import MetricsConfig
from nsync_bench.data.styles import get_style, list_images
from nsync_bench.io import file_sha256
from nsync_bench.tracking import schema

if TYPE_CHECKING:
    from nsync_bench.metrics.scoring import ScoreReport

log = logging.getLogger(__name__)

REFERENCE_KIND = schema.REFERENCE_KIND
REAL_DATA = "real-data"
# Bump when the floor's definition changes: old reference runs then miss.
REFERENCE_VERSION = 1
# Metric settings that change where the numbers are computed, not the numbers.
_NOT_IN_KEY = ("device", "batch_size")


@dataclass(frozen=True)
class FloorImages:
    generated: list[Path]  # the real training images standing in for a method's generated set
    real: list[Path]  # the style's real test images, as in every run
    requested: int  # the runs' number of generated images


@dataclass
class Floor:
    style: str
    key: str
    values: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # metric.<name>.implementation, .n_generated, .n_real
    run_id: str | None = None
    computed: bool = False  # False: read back from MLflow


def floor_images(style: str, data_root: Path, n_generated: int, seed: int = 0) -> FloorImages:
    """``n_generated`` training images (a seeded sample, kept in file order) and all test images."""
    from nsync_bench.data.styles import ensure_style_data

    if n_generated < 1:
        raise ValueError(f"n_generated must be at least 1 (the runs' number of evaluation images); got {n_generated}")
    info = get_style(style)
    style_dir = ensure_style_data(style, Path(data_root))
    train = [img.path for img in list_images(style_dir, info.train_split)]
    real = [img.path for img in list_images(style_dir, info.test_split)]
    if n_generated >= len(train):
        picked = train
    else:
        order = np.random.default_rng(seed).choice(len(train), size=n_generated, replace=False)
        picked = [train[i] for i in sorted(order)]
    return FloorImages(picked, real, n_generated)


def reference_key(style: str, metrics: MetricsConfig, images: FloorImages) -> str:
    """A hash of the style, the metric settings and the content of both image sets."""
    settings = {k: v for k, v in metrics.model_dump(mode="json").items() if k not in _NOT_IN_KEY}
    payload = {"v": REFERENCE_VERSION, "style": style, "metrics": settings,
               "generated": [(p.name, file_sha256(p)) for p in images.generated],
               "real": sorted((p.name, file_sha256(p)) for p in images.real)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def score_floor(images: FloorImages, metrics: MetricsConfig, weights_dir: Path | None = None) -> ScoreReport:
    """The metrics of the real training sample against the real test set (features cached as for runs)."""
    from nsync_bench.metrics.scoring import score_image_sets

    return score_image_sets(images.generated, images.real, metrics, weights_dir=weights_dir,
                            cache_root=paths.cache_dir() / "features")


def find_floor(tracking_uri: str, experiment_ids: list[str], key: str) -> Floor | None:
    """The newest finished reference run with this key in any of the experiments, or None."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = client.search_runs(experiment_ids, filter_string=schema.finished_filter(schema.REFERENCE_KEY, key),
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return None
    run = runs[0]
    values = {k.removeprefix("metrics/"): v for k, v in run.data.metrics.items()
              if k.startswith("metrics/") and not k.endswith("_std")}
    tags = {k: v for k, v in run.data.tags.items() if schema.is_metric_tag(k)}
    return Floor(run.data.tags.get("style", ""), key, values, tags, run.info.run_id)


def log_floor(tracking_uri: str, experiment: str, *, style: str, profile: str, key: str,
              report: ScoreReport) -> Floor:
    """Log a computed floor as a reference run (see the module docstring for its tags)."""
    from nsync_bench.pipeline.evaluation import log_scores
    from nsync_bench.tracking.tracker import MlflowTracker

    tracker = MlflowTracker(tracking_uri, experiment, run_name=f"{style}/{REAL_DATA}",
                            tags={**schema.kind_tag(schema.REFERENCE_KIND), "method": REAL_DATA, "style": style,
                                  "profile": profile, schema.REFERENCE_KEY: key})
    try:
        metrics = log_scores(report, tracker)
        tracker.log_metrics(metrics)
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")
    values = {k.removeprefix("metrics/"): v for k, v in metrics.items() if not k.endswith("_std")}
    return Floor(style, key, values, _metric_tags(report), tracker.run_id, computed=True)


def _metric_tags(report: ScoreReport) -> dict[str, str]:
    tags = {}
    for name, result in report.results.items():
        tags.update(schema.metric_tags(name, implementation=result.implementation, n_generated=result.n_generated,
                                       n_real=result.n_real))
    return tags


def ensure_floor(tracking_uri: str, experiment: str, search_experiment_ids: list[str], *, style: str, profile: str,
                 metrics: MetricsConfig, n_generated: int, data_root: Path,
                 weights_dir: Path | None = None) -> Floor:
    """The floor for these settings: read from MLflow if logged before, else computed and logged once."""
    images = floor_images(style, data_root, n_generated, seed=metrics.seed)
    key = reference_key(style, metrics, images)
    found = find_floor(tracking_uri, search_experiment_ids, key)
    if found is not None:
        log.debug("real-data floor %s for %s found in MLflow run %s", key, style, found.run_id)
        return found
    log.info("computing the real-data floor of %s: %d train vs %d test images", style, len(images.generated),
             len(images.real))
    return log_floor(tracking_uri, experiment, style=style, profile=profile, key=key,
                     report=score_floor(images, metrics, weights_dir))


def metrics_config_from_params(params: dict[str, str]) -> MetricsConfig:
    """A run's MetricsConfig from its MLflow params (the flattened resolved config: ``metrics.*``)."""
    import ast

    tree: dict[str, Any] = {}
    for name, text in params.items():
        if not name.startswith("metrics."):
            continue
        try:
            value: Any = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a plain string (e.g. "smoke", a model id)
        tree[name.removeprefix("metrics.")] = value
    return MetricsConfig.model_validate(tree)


__all__ = ["REAL_DATA", "REFERENCE_KIND", "Floor", "FloorImages", "ensure_floor", "find_floor", "floor_images",
           "log_floor", "metrics_config_from_params", "reference_key", "score_floor"]
