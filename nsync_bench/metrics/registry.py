"""The metric registry: the metrics' specs, in report order, from the rows of ``metrics/plugins.toml``.

The one place a metric's identity lives is its module's ``SPEC`` (name, label, direction, extractor kind,
estimator id, set-size rules); ``plugins.toml`` lists the modules. Everything else asks here: config
validates ``metrics.names`` against the row names (config/plugins.py reads the table without importing
it), scoring, preflight, readiness, the report's columns, labels and order, and the sweep's dry run.
Light on purpose (the metric modules need only numpy): nothing here imports feature extraction or torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from nsync_bench.config.plugins import load_plugin, plugin_table
from nsync_bench.metrics.spec import MetricSpec

GROUP = "metrics"

__all__ = ["GROUP", "directions", "extractor_kinds", "metric_labels", "metric_order", "specs"]


def specs() -> dict[str, MetricSpec]:
    """name -> spec, in report order. Read on each call (modules are imported once), so a row added at run
    time, as a test adds a dummy metric, is seen everywhere."""
    out: dict[str, MetricSpec] = {}
    for name in plugin_table().get(GROUP, {}):
        spec = load_plugin(GROUP, name, "metric")
        if not isinstance(spec, MetricSpec) or spec.name != name:
            raise TypeError(f"metrics/plugins.toml row {name!r} must point at a MetricSpec named {name!r}, "
                            f"got {spec!r}")
        out[name] = spec
    return out


def directions() -> dict[str, Literal["lower", "higher"]]:
    return {name: spec.direction for name, spec in specs().items()}


def metric_labels() -> dict[str, str]:
    """name -> the label tables and plots print ("FID")."""
    return {name: spec.label for name, spec in specs().items()}


def metric_order(names: Iterable[str]) -> list[str]:
    """``names`` in report order; names the registry does not know (endpoints) after them, sorted."""
    present = set(names)
    known = list(specs())
    return [m for m in known if m in present] + sorted(present - set(known))


def extractor_kinds(names: Iterable[str]) -> list[str]:
    """The feature extractor kinds ``names`` need, each once, in report order (FID and KID share Inception)."""
    table = specs()
    return list(dict.fromkeys(table[name].extractor for name in metric_order(names) if name in table))
