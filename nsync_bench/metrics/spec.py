"""What a metric declares about itself: name, direction, feature kind, estimator id, scoring function.

Each metric module (``fid``, ``kid``, ``cmmd``, ``csd``) ends with one ``SPEC = MetricSpec(...)``;
``metrics/plugins.toml`` lists those modules and ``metrics.registry`` reads their specs, so the estimator id
a run logs (``metric.<name>.implementation``, before the ``|extractor id``) is built by the same
module, from the same constants and config values, as the number it labels. The report refuses to
compare numbers whose ids differ, so an id that drifted from the code would hide a change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from nsync_bench.config.run_config import MetricsConfig

__all__ = ["Direction", "ExtractorKind", "MetricScore", "MetricSpec"]

Direction = Literal["lower", "higher"]
ExtractorKind = Literal["inception", "clip", "csd"]


@dataclass(frozen=True)
class MetricScore:
    """One metric's result on (generated, real) features, before the extractor id is attached."""

    value: float
    std: float | None
    n_generated: int  # feature rows (images) the estimate actually used
    n_real: int
    per_image: np.ndarray | None = None  # one score per generated image, where the metric has one (CSD)


@dataclass(frozen=True)
class MetricSpec:
    """A metric's identity and computation, declared in its own module.

    ``min_images`` and ``reliable_images`` are per image set; preflight refuses a run below the first
    and warns below the second. ``estimator_id(config)`` names the estimator with every constant and
    config value that changes the estimate; it is read at call time, so it follows the module's
    constants. ``score(gen, real, config)`` takes (n, d) feature arrays from the ``extractor`` kind,
    generated first.
    """

    name: str
    direction: Direction
    extractor: ExtractorKind
    estimator_id: Callable[[MetricsConfig], str]
    score: Callable[[np.ndarray, np.ndarray, MetricsConfig], MetricScore]
    min_images: int = 1  # per set, below which the estimate is undefined (a covariance needs two)
    reliable_images: int = 1  # per set, below which estimator bias and noise dominate: the run carries a warning
    label: str = ""  # what tables and plots print; the name in capitals when empty

    def __post_init__(self) -> None:
        if self.direction not in ("lower", "higher"):
            raise ValueError(f"metric {self.name!r}: direction must be 'lower' or 'higher', got {self.direction!r}")
        if not self.label:
            object.__setattr__(self, "label", self.name.upper())
