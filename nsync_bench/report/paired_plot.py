"""The paired plot: per-seed differences between a candidate and its baseline, what the paired test sees.

Means with confidence intervals hide the pairing: two methods whose intervals overlap can still
differ in every seed. Here each comparison gets one point per seed — the seed's difference,
oriented like the comparisons table (positive = the candidate is better: baseline − candidate for
lower-is-better metrics, candidate − baseline for higher-is-better ones) — beside the mean
difference and its CI from the comparisons table, with a line at zero.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nsync_bench.report.plots import METRIC_LABELS, _png, direction_label


def seed_differences(results: pd.DataFrame, candidate: str, baseline: str, metric: str) -> pd.Series:
    """Oriented per-seed differences (index: seed) over the seeds both methods have."""
    part = results[results["metric"] == metric]
    a = part[part["method"] == candidate].set_index("seed")["value"]
    b = part[part["method"] == baseline].set_index("seed")["value"]
    common = sorted(set(a.index) & set(b.index))
    if not common or part.empty:
        return pd.Series(dtype=float)
    lower = str(part["direction"].iloc[0]) == "lower"
    diff = b.loc[common] - a.loc[common] if lower else a.loc[common] - b.loc[common]
    return diff.astype(float)


def paired_figure(results: pd.DataFrame, comparisons: pd.DataFrame, title: str,
                  colors: dict[str, str] | None = None) -> bytes | None:
    """One panel per metric for one (profile, protocol, style); None when there is nothing to pair.

    ``results``: the tidy per-run table of that style; ``comparisons``: its rows of the seed-level
    comparisons table (for the mean difference and its CI).
    """
    if comparisons.empty:
        return None
    metrics = [m for m in METRIC_LABELS if m in set(comparisons["metric"])]
    metrics += sorted(set(comparisons["metric"]) - set(metrics))
    pairs = list(dict.fromkeys(zip(comparisons["candidate"], comparisons["baseline"], strict=True)))
    columns = min(len(metrics), 2)
    rows = math.ceil(len(metrics) / columns)
    width = max(3.4, 1.0 + 1.1 * len(pairs))
    figure = Figure(figsize=(columns * width + 0.4, rows * 3.0), layout="constrained")
    for k, metric in enumerate(metrics):
        axis = figure.add_subplot(rows, columns, k + 1)
        axis.axhline(0.0, color="black", linewidth=0.8)
        direction = "lower"
        for x, (candidate, baseline) in enumerate(pairs):
            color = (colors or {}).get(candidate, "#1f77b4")
            diffs = seed_differences(results, candidate, baseline, metric)
            if diffs.empty:
                continue
            jitter = np.linspace(-0.12, 0.12, len(diffs)) if len(diffs) > 1 else np.zeros(1)
            axis.plot(x - 0.15 + jitter, diffs.to_numpy(), "o", color=color, alpha=0.75, markersize=5,
                      label="one seed" if x == 0 else "_nolegend_")
            match = comparisons[(comparisons["metric"] == metric) & (comparisons["candidate"] == candidate)
                                & (comparisons["baseline"] == baseline)]
            if match.empty:
                continue
            c = match.iloc[0]
            direction = str(c["direction"])
            low, high = float(c["ci_low"]), float(c["ci_high"])
            err = [[c["mean_diff"] - low], [high - c["mean_diff"]]] if np.isfinite([low, high]).all() else None
            axis.errorbar([x + 0.2], [c["mean_diff"]], yerr=err, fmt="D", color="black", capsize=3, markersize=5,
                          label="mean, 95% CI" if x == 0 else "_nolegend_")
        axis.set_xticks(np.arange(len(pairs)), [f"{c}\nvs {b}" for c, b in pairs], fontsize=8)
        axis.set_xlim(-0.6, len(pairs) - 0.4)
        axis.set_title(f"{METRIC_LABELS.get(metric, metric.upper())} ({direction_label(direction)})", fontsize=10)
        axis.set_ylabel("difference (+ = candidate better)", fontsize=8)
        axis.grid(axis="y", alpha=0.3)
        axis.tick_params(axis="y", labelsize=8)
        if k == 0:
            axis.legend(fontsize=7, frameon=False)
    figure.suptitle(title, fontsize=10)
    return _png(figure)
