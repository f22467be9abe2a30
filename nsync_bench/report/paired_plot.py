"""The paired plot: per-seed differences between a candidate and its baseline, what the paired test sees.

Means with confidence intervals hide the pairing: two methods whose intervals overlap can still
differ in every seed. Here each comparison gets its per-seed differences drawn as a distribution —
one point per seed and, from 4 seeds on, a violin of their density, so a bimodal outcome (6 of 10
tokens converge) shows as two clusters instead of a wide standard deviation — oriented like the
comparisons table (positive = the candidate is better: baseline − candidate for lower-is-better
metrics, candidate − baseline for higher-is-better ones) and on the scale the claim declares (log:
the log of the ratio), beside the mean difference and its CI from the comparisons table, with a line
at zero and the count of seeds in which the candidate was better.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nsync_bench.metrics.registry import metric_order
from nsync_bench.report.plots import _png, direction_label, metric_label


def seed_differences(results: pd.DataFrame, candidate: str, baseline: str, metric: str,
                     transform: str = "none") -> pd.Series:
    """Oriented per-seed differences (index: seed) over the seeds both methods have, on the declared scale."""
    part = results[results["metric"] == metric]
    a = part[part["method"] == candidate].set_index("seed")["value"]
    b = part[part["method"] == baseline].set_index("seed")["value"]
    common = sorted(set(a.index) & set(b.index))
    if not common or part.empty:
        return pd.Series(dtype=float)
    lower = str(part["direction"].iloc[0]) == "lower"
    a, b = a.loc[common].astype(float), b.loc[common].astype(float)
    if transform == "log":
        a, b = np.log(a), np.log(b)
    diff = b - a if lower else a - b
    return diff.astype(float)


def _distribution(axis: Axes, x: int, values: np.ndarray, color: str, first: bool) -> str:
    """One comparison's per-seed differences at x: a violin of their density (from 4 seeds; fewer cannot
    show a shape) and every seed as a point spread sideways by rank; returns "k/n better" for the label."""
    if values.size >= 4 and np.ptp(values) > 0:
        parts = axis.violinplot([values], positions=[x - 0.1], widths=0.5, showextrema=False)
        for body in list(parts["bodies"]):  # type: ignore[call-overload]
            body.set_facecolor(color)
            body.set_alpha(0.25)
    order = np.argsort(np.argsort(values))
    offsets = (order / max(values.size - 1, 1) - 0.5) * 0.24 if values.size > 1 else np.zeros(1)
    axis.plot(x - 0.1 + offsets, values, "o", color=color, alpha=0.85, markersize=5,
              markeredgecolor="white", markeredgewidth=0.5, label="one seed" if first else "_nolegend_")
    return f"{int(np.count_nonzero(values > 0))}/{values.size} better"


def paired_figure(results: pd.DataFrame, comparisons: pd.DataFrame, title: str,
                  colors: dict[str, str] | None = None) -> bytes | None:
    """One panel per metric for one (profile, protocol, style); None when there is nothing to pair.

    ``results``: the tidy per-run table of that style; ``comparisons``: its rows of the seed-level
    comparisons table (for the mean difference and its CI).
    """
    if comparisons.empty:
        return None
    metrics = metric_order(comparisons["metric"])
    pairs = list(dict.fromkeys(zip(comparisons["candidate"], comparisons["baseline"], strict=True)))
    columns = min(len(metrics), 2)
    rows = math.ceil(len(metrics) / columns)
    width = max(3.4, 1.0 + 1.1 * len(pairs))
    figure = Figure(figsize=(columns * width + 0.4, rows * 3.0), layout="constrained")
    for k, metric in enumerate(metrics):
        axis = figure.add_subplot(rows, columns, k + 1)
        axis.axhline(0.0, color="black", linewidth=0.8)
        direction = "lower"
        scales: dict[str, bool] = {}
        labels = [f"{c}\nvs {b}" for c, b in pairs]
        for x, (candidate, baseline) in enumerate(pairs):
            color = (colors or {}).get(candidate, "#1f77b4")
            match = comparisons[(comparisons["metric"] == metric) & (comparisons["candidate"] == candidate)
                                & (comparisons["baseline"] == baseline)]
            transform = str(match.iloc[0].get("transform", "none")) if len(match) else "none"
            diffs = seed_differences(results, candidate, baseline, metric, transform)
            if diffs.empty:
                continue
            labels[x] += "\n" + _distribution(axis, x, diffs.to_numpy(), color, first=x == 0)
            if match.empty:
                continue
            c = match.iloc[0]
            direction = str(c["direction"])
            scales[transform] = True
            low, high = float(c["ci_low"]), float(c["ci_high"])
            err = [[c["mean_diff"] - low], [high - c["mean_diff"]]] if np.isfinite([low, high]).all() else None
            axis.errorbar([x + 0.3], [c["mean_diff"]], yerr=err, fmt="D", color="black", capsize=3, markersize=5,
                          label="mean, 95% CI" if x == 0 else "_nolegend_")
        axis.set_xticks(np.arange(len(pairs)), labels, fontsize=8)
        axis.set_xlim(-0.6, len(pairs) - 0.4)
        axis.set_title(f"{metric_label(metric)} ({direction_label(direction)})", fontsize=10)
        scale = " (log ratio)" if "log" in scales else ""
        axis.set_ylabel(f"difference{scale} (+ = candidate better)", fontsize=8)
        axis.grid(axis="y", alpha=0.3)
        axis.tick_params(axis="y", labelsize=8)
        if k == 0:
            axis.legend(fontsize=7, frameon=False)
    figure.suptitle(title, fontsize=10)
    return _png(figure)
