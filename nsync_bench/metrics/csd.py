r"""NSYNC's CSD style score: mean cosine between each generated image's CSD embedding and the mean real embedding.

Equation, for generated style embeddings ``g_1..g_N`` and real (style-reference) embeddings
``r_1..r_M``::

    m = (1/M) sum_j r_j                      (not re-normalised)
    cos_i = g_i · m / (max(||g_i||, eps) * max(||m||, eps)),   eps = 1e-6
    CSD_NSYNC = (1/N) sum_i cos_i

This reproduces ``src/metrics/calculate_csd.py`` of giddyyupp/NSYNC (docs/metrics.md §5.1, test value
§5.3): ``mean_style_feature = torch.mean(values_features, 0)``, then
``nn.CosineSimilarity(dim=1, eps=1e-6)(mean_style_feature, query_features)`` and the mean; the
embeddings are CSD ViT-L ``style_output`` vectors (unit norm), computed by the caller.
``eps`` enters as in current torch (>= 1.12): each vector's norm is clamped below at eps
separately (older torch clamped the product of the norms); for unit-norm embeddings and a
non-degenerate mean it never acts.

It is not the CSD authors' "proto" recipe (dot product of the two mean vectors, CSD#5), which
equals this value times ``||m||``. Higher is better. The references run in float32; this runs
in float64.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from nsync_bench.metrics._arrays import as_sample_matrix, check_same_dim
from nsync_bench.metrics.spec import MetricScore, MetricSpec

if TYPE_CHECKING:
    from nsync_bench.config.run_config import MetricsConfig

__all__ = ["EPS", "ESTIMATOR", "SPEC", "csd_per_image", "csd_score"]

# giddyyupp/NSYNC src/metrics/calculate_csd.py: nn.CosineSimilarity(dim=1, eps=1e-6)
EPS = 1e-6
# NSYNC's score (cosine of each generated embedding to the mean real one), not the CSD authors' "proto".
ESTIMATOR = "csd-cos-to-mean-real"


def csd_per_image(gen_emb: Any, real_emb: Any) -> np.ndarray:
    """Per generated image, the cosine between its embedding and the mean real embedding (float64, shape (N,)).

    Input contract: ``gen_emb`` (N, d) generated-image embeddings and ``real_emb`` (M, d)
    real style-image embeddings, finite, N, M >= 1, same d; numpy or torch; float64
    internally. Rows need not be unit norm (cosine is scale-invariant), but the reference
    embeddings are. Row order of ``gen_emb`` is kept, so scores can be paired across runs.
    """
    g = as_sample_matrix(gen_emb, "gen_emb", min_samples=1)
    r = as_sample_matrix(real_emb, "real_emb", min_samples=1)
    check_same_dim(g, r, "gen_emb", "real_emb")
    m = r.mean(axis=0)
    g_norm = np.maximum(np.linalg.norm(g, axis=1), EPS)
    m_norm = max(float(np.linalg.norm(m)), EPS)
    return (g @ m) / (g_norm * m_norm)


def csd_score(gen_emb: Any, real_emb: Any) -> float:
    """NSYNC's CSD score: the mean of :func:`csd_per_image` (same input contract)."""
    return float(np.mean(csd_per_image(gen_emb, real_emb)))


def estimator_id(config: MetricsConfig) -> str:
    """``csd-cos-to-mean-real``: no config value changes this estimate."""
    return ESTIMATOR


def score(gen: np.ndarray, real: np.ndarray, config: MetricsConfig) -> MetricScore:
    """The mean of :func:`csd_per_image`, with the per-image scores (every image is used)."""
    scores = csd_per_image(gen, real)
    return MetricScore(float(np.mean(scores)), None, len(gen), len(real), per_image=scores)


SPEC = MetricSpec(name="csd", direction="higher", extractor="csd", estimator_id=estimator_id, score=score)
