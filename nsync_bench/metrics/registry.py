"""The metric registry: the metric modules, in report order, and the specs they declare.

Light on purpose (the metric modules need only numpy): the report, preflight and the toy world read
names, directions and set-size rules from here without importing feature extraction or torch.
"""

from __future__ import annotations

from typing import Literal

from nsync_bench.metrics import cmmd, csd, fid, kid
from nsync_bench.metrics.spec import MetricSpec

METRIC_MODULES = (fid, kid, cmmd, csd)
SPECS: dict[str, MetricSpec] = {module.SPEC.name: module.SPEC for module in METRIC_MODULES}
# metric -> (feature extractor kind, direction), from the specs
METRICS: dict[str, tuple[str, Literal["lower", "higher"]]] = {
    name: (spec.extractor, spec.direction) for name, spec in SPECS.items()
}
