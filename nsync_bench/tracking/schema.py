"""The names of the MLflow tags nsync-bench writes and reads, in one place (docs/mlflow.md).

Every writer (the runner, evaluation, the real-data floor, the report) builds its tags here and every
reader (the runs table, the reference rows, the floor lookup, the report tests' fake store) reads them
through the same names, so a tag renamed here is renamed everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

# What an MLflow run is: a method run, a real-data floor (pipeline/reference.py) or a report (report/build.py).
KIND = "nsync_bench.kind"
RUN_KIND: Final = "run"
REFERENCE_KIND: Final = "reference"
REPORT_KIND: Final = "report"
Kind = Literal["run", "reference", "report"]

# A method run's identity: its five coordinates and its run key (a floor or a report has no run key).
RUN_KEY = "run_key"
COORDINATES = ("style", "method", "seed", "profile", "protocol")
# A real-data floor's identity (pipeline/reference.py).
REFERENCE_KEY = "reference_key"

# Per metric (and per endpoint): metric.<name>.<field>.
METRIC_PREFIX = "metric."
DIRECTION = "direction"
IMPLEMENTATION = "implementation"
N_GENERATED = "n_generated"
N_REAL = "n_real"
N_GENERATED_AVAILABLE = "n_generated_available"
N_REAL_AVAILABLE = "n_real_available"
WARNING = "warning"
# What the image folders held, for the whole run (not per metric).
GENERATED_IMAGES = "metric.generated_images"
REAL_IMAGES = "metric.real_images"


def run_tags(coordinates: Mapping[str, Any] | Any, run_key: str) -> dict[str, Any]:
    """A method run's identity: its five coordinates (from a mapping or from ``RunConfig.run``) and its key."""
    get = coordinates.get if isinstance(coordinates, Mapping) else lambda name: getattr(coordinates, name)
    return {**{name: get(name) for name in COORDINATES}, RUN_KEY: run_key}


def kind_tag(kind: Kind) -> dict[str, str]:
    return {KIND: kind}


def metric_tag(metric: str, field: str) -> str:
    """``metric.<metric>.<field>``, e.g. ``metric.fid.implementation``."""
    return f"{METRIC_PREFIX}{metric}.{field}"


def direction_text(direction: str) -> str:
    """How a direction is written: ``"lower is better"``; :func:`direction_of` reads it back."""
    return f"{direction} is better"


def direction_of(text: str) -> Literal["lower", "higher"]:
    return "higher" if text.startswith("higher") else "lower"


def metric_tags(metric: str, *, direction: str | None = None, implementation: str, n_generated: int | None = None,
                n_real: int | None = None, n_generated_available: int | None = None,
                n_real_available: int | None = None) -> dict[str, str]:
    """The tags of one metric's result; fields left ``None`` are not written."""
    fields = {DIRECTION: direction_text(direction) if direction is not None else None,
              IMPLEMENTATION: implementation, N_GENERATED: n_generated, N_REAL: n_real,
              N_GENERATED_AVAILABLE: n_generated_available, N_REAL_AVAILABLE: n_real_available}
    return {metric_tag(metric, field): str(value) for field, value in fields.items() if value is not None}


def is_metric_tag(name: str) -> bool:
    return name.startswith(METRIC_PREFIX)


def column(tag: str) -> str:
    """The column of a tag in ``mlflow.search_runs(output_format="pandas")``."""
    return f"tags.{tag}"


def kind_filter(kind: Kind) -> str:
    """An MLflow search filter for runs of ``kind``."""
    return f"tags.`{KIND}` = '{kind}'"


def finished_filter(tag: str, value: str) -> str:
    """An MLflow search filter for finished runs whose ``tag`` is ``value``."""
    return f"tags.`{tag}` = '{value}' and attributes.status = 'FINISHED'"
