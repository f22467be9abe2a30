"""Build a feature extractor by kind and source; imports stay lazy (docs/architecture.md, rule 5).

``source="real"`` uses the reference networks and weights (Inception in one of three modes,
CLIP ViT-L/14@336 for CMMD, CSD ViT-L); missing weights are a teaching error naming the fetch
command. ``source="smoke"`` uses small random-weight stand-ins (``smoke-random:`` ids);
any other source is a plugin (``extractor_sources`` in a package's ``plugins.toml``, nsync_bench.config.plugins):
``source="toy-world"`` is the toy world's trained probe (``toy-world-probe:`` ids).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from nsync_bench.config.plugins import load_plugin, plugin_names
from nsync_bench.config.run_config import CLIP_MODEL
from nsync_bench.errors import unknown_name
from nsync_bench.metrics.extractors.base import FeatureExtractor

logger = logging.getLogger(__name__)

KINDS = ("inception", "clip", "csd")
BUILT_IN_SOURCES = ("real", "smoke")
INCEPTION_MODES = ("clean", "legacy_pytorch", "nsync-legacy")


def build_extractor(
    kind: str,
    *,
    source: Literal["real", "smoke", "toy-world"] | str = "real",
    inception_mode: str = "clean",
    weights_dir: str | Path | None = None,
    clip_model: str = CLIP_MODEL,
    device: str = "cpu",
) -> FeatureExtractor:
    """The extractor of ``kind`` ("inception", "clip", "csd") from ``source``, moved to ``device``.

    ``inception_mode`` picks the Inception preprocessing + weights (docs/metrics.md §2.4);
    ``clip_model`` is a hub id or a local directory; ``weights_dir`` overrides where official
    weights are looked up (see :func:`nsync_bench.metrics.weights.weights_dir`).
    """
    if kind not in KINDS:
        raise unknown_name("feature extractor kind", kind, KINDS)
    sources = (*BUILT_IN_SOURCES, *plugin_names("extractor_sources"))
    if source not in sources:
        raise unknown_name("extractor source", source, sources, "Use 'smoke' offline without weights.")
    if inception_mode not in INCEPTION_MODES:
        raise unknown_name("Inception mode", inception_mode, INCEPTION_MODES)
    extractor: FeatureExtractor
    if source == "smoke":
        from nsync_bench.metrics.extractors.smoke import smoke_extractor

        extractor = smoke_extractor(kind)
    elif source not in BUILT_IN_SOURCES:  # a plugin's, e.g. the toy world's trained probe
        extractor = load_plugin("extractor_sources", source, "extractor source")(kind)
    elif kind == "inception":
        from nsync_bench.metrics.extractors.inception import MODES, InceptionExtractor
        from nsync_bench.metrics.weights import require_weight

        extractor = InceptionExtractor.from_file(inception_mode, require_weight(MODES[inception_mode], weights_dir))
    elif kind == "clip":
        from nsync_bench.metrics.extractors.clip import load_clip_extractor

        extractor = load_clip_extractor(clip_model, weights_dir=weights_dir)
    else:
        from nsync_bench.metrics.extractors.csd import CONVERTED_NAME, CSDExtractor
        from nsync_bench.metrics.weights import require_weight, weight_path

        converted = weight_path("csd-vit-l", weights_dir).with_name(CONVERTED_NAME)
        if converted.is_file():  # the user's tensors-only conversion of the official checkpoint
            logger.info("CSD: using the converted checkpoint %s", converted)
            extractor = CSDExtractor.from_file(converted)
        else:
            extractor = CSDExtractor.from_file(require_weight("csd-vit-l", weights_dir))
    logger.debug("feature extractor %s on %s", extractor.implementation_id, device)
    return extractor.to(device)
