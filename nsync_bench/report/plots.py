"""Report figures: each metric per style and method with confidence intervals; training curves.

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas directly, never through
``pyplot``: no global figure state, no GUI backend, safe in threads and on headless machines.
Every function returns PNG bytes (the HTML embeds them; the report also writes them to
``figures/``).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nsync_bench.config.methods import method_order as ordered_methods
from nsync_bench.metrics.registry import metric_labels, metric_order, specs

log = logging.getLogger(__name__)

TRAINING_CURVE_LABELS = {"train/loss": "training loss", "grad/cos_pos_neg": "cos(∇ positive, ∇ negative)"}
# Tableau-like colours; a method keeps its colour in every figure of a report.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
DPI = 100


def method_order(methods: Iterable[str]) -> list[str]:
    """Known methods in their descriptors' order (nsync_bench.config.methods), then the rest sorted."""
    return ordered_methods({str(m) for m in methods})


def metric_label(metric: str) -> str:
    """A metric's label from its spec (metrics/registry.py); an endpoint's name in capitals."""
    return metric_labels().get(metric, metric.upper())


def curve_labels() -> dict[str, str]:
    """Learning-curve panel titles, in panel order: the training curves, then each metric's ``curve/<name>``."""
    arrows = {"lower": "↓", "higher": "↑"}
    return {**TRAINING_CURVE_LABELS, **{f"curve/{name}": f"{spec.label} {arrows[spec.direction]} vs step"
                                        for name, spec in specs().items()}}


def method_colors(methods: Iterable[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(method_order(methods))}


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)  # constrained layout already fits the labels
    return buffer.getvalue()


def direction_label(direction: str) -> str:
    return "↓ lower is better" if direction == "lower" else "↑ higher is better"


def metric_figure(summary: pd.DataFrame, colors: dict[str, str] | None = None,
                  floor: pd.DataFrame | None = None) -> bytes:
    """One panel per metric: the mean per style (x) and method (marker), with the t-based CI as error bars;
    the real-data floor (``floor``: reference rows with style, metric, value) as a black dash per style.

    ``summary`` is :func:`nsync_bench.report.analysis.summarize` output for one (profile, protocol).
    Points of a style are dodged sideways so the intervals do not overlap. With n = 1 a point
    has no interval (nothing to estimate the spread from) and is drawn hollow.
    """
    metrics = metric_order(summary["metric"])
    styles = sorted(summary["style"].unique())
    methods = method_order(summary["method"].unique())
    colors = colors or method_colors(methods)
    columns = min(len(metrics), 2)
    rows = math.ceil(len(metrics) / columns)
    width = max(3.2, 0.9 + 0.55 * len(styles) * max(len(methods), 2) / 2)
    figure = Figure(figsize=(columns * width + 0.6, rows * 3.0), layout="constrained")
    offsets = np.linspace(-0.3, 0.3, len(methods)) if len(methods) > 1 else np.zeros(1)
    for k, metric in enumerate(metrics):
        axis = figure.add_subplot(rows, columns, k + 1)
        part = summary[summary["metric"] == metric]
        for offset, method in zip(offsets, methods, strict=True):
            rows_m = part[part["method"] == method].set_index("style").reindex(styles)
            x = np.arange(len(styles)) + offset
            mean = rows_m["mean"].to_numpy(dtype=float)
            low = mean - rows_m["ci_low"].to_numpy(dtype=float)
            high = rows_m["ci_high"].to_numpy(dtype=float) - mean
            err = np.nan_to_num(np.vstack([low, high]), nan=0.0)
            axis.errorbar(x, mean, yerr=err, fmt="o", color=colors[method], capsize=3, markersize=5, label=method)
            single = rows_m["n"].to_numpy(dtype=float) < 2
            if single.any():
                axis.plot(x[single], mean[single], "o", color="white", markersize=3)
        _draw_floor(axis, floor, metric, styles)
        direction = str(part["direction"].iloc[0]) if len(part) else "lower"
        axis.set_title(f"{metric_label(metric)}  ({direction_label(direction)})", fontsize=10)
        axis.set_xticks(np.arange(len(styles)), styles, fontsize=9)
        axis.grid(axis="y", alpha=0.3)
        axis.tick_params(axis="y", labelsize=8)
        if k == 0:
            axis.legend(fontsize=8, frameon=False)
    figure.suptitle("mean per style and method, 95 % CI over seeds", fontsize=10)
    return _png(figure)


def _draw_floor(axis, floor: pd.DataFrame | None, metric: str, styles: list[str]) -> None:
    """A dashed black segment across each style's column at its real-data floor."""
    if floor is None or floor.empty:
        return
    values = floor[floor["metric"] == metric].set_index("style")["value"]
    label = "real data (floor)"
    for x, style in enumerate(styles):
        if style in values.index:
            axis.hlines(float(values[style]), x - 0.42, x + 0.42, colors="black", linestyles="--", linewidth=1.2,
                        label=label)
            label = "_nolegend_"


def _floor_line(axis, value: float) -> None:
    """A dashed floor line where it keeps the curves readable; far off their scale, a note instead
    (a curve's change over steps is what it is for, and the floor would flatten it)."""
    low, high = axis.get_ylim()
    span = max(high - low, 1e-12)
    if low - span <= value <= high + span:
        axis.axhline(value, color="black", linestyle="--", linewidth=1.0, label="real data (floor)")
    else:
        below = value < low
        axis.text(0.01, 0.02 if below else 0.98, f"real-data floor {value:.4g} ({'below' if below else 'above'} "
                  "this scale)", transform=axis.transAxes, fontsize=7, va="bottom" if below else "top")


def curves_figure(histories: pd.DataFrame, runs: pd.DataFrame, title: str,
                  colors: dict[str, str] | None = None, floor: dict[str, float] | None = None) -> bytes | None:
    """Step curves of one (profile, protocol, style): a panel per history key present.

    Per method: each seed's curve as a thin, light line and the mean over seeds at each step
    (over the seeds that logged that step) as a bold line; ``floor`` (key -> value) adds a dashed
    reference line, e.g. the real-data floor under ``curve/fid``. None when nothing was logged.
    """
    if histories.empty:
        return None
    table = histories.merge(runs[["run_id", "method", "seed"]], on="run_id")
    labels = curve_labels()
    keys = [k for k in labels if k in set(table["key"])] + sorted(set(table["key"]) - set(labels))
    if not keys:
        return None
    methods = method_order(table["method"].unique())
    colors = colors or method_colors(methods)
    figure = Figure(figsize=(5.2 * len(keys), 3.2), layout="constrained")
    for k, key in enumerate(keys):
        axis = figure.add_subplot(1, len(keys), k + 1)
        part = table[table["key"] == key]
        for method in methods:
            rows = part[part["method"] == method]
            if rows.empty:
                continue
            for _, seed_rows in rows.groupby("seed"):
                seed_rows = seed_rows.sort_values("step")
                axis.plot(seed_rows["step"], seed_rows["value"], color=colors[method], alpha=0.25, linewidth=0.8)
            mean = rows.groupby("step")["value"].mean()
            seeds = rows["seed"].nunique()
            axis.plot(mean.index, mean.to_numpy(), color=colors[method], linewidth=2,
                      label=f"{method} (mean of {seeds} seed{'s' if seeds != 1 else ''})")
        if key == "grad/cos_pos_neg":
            axis.axhline(0.0, color="black", linewidth=0.6, alpha=0.5)
        if floor and key in floor:
            _floor_line(axis, floor[key])
        axis.set_title(labels.get(key, key), fontsize=10)
        axis.set_xlabel("step", fontsize=9)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=8)
        axis.legend(fontsize=7, frameon=False)
    figure.suptitle(title, fontsize=10)
    return _png(figure)
