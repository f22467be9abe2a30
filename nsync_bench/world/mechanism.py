"""What NSYNC's mechanism did in a toy-world experiment, read back from MLflow.

The report compares arms; this reads what the comparison rests on, for one nuisance target
(``world-linen``):

* the **premise**: does the reference arm (TI) leak the shared nuisance at all? Its leakage per seed
  against the value real images have, 1/|values of the nuisance| (the test split spreads the nuisance
  evenly), tested with the paired tests of the report (t and exact sign-flip) on the differences;
* per run, the endpoints the probe logged (``metrics/<name>``);
* per NSYNC run, the training curves of ``grad/cos_pos_neg`` (cos(a, b)) and
  ``grad/norm_ratio_neg_pos`` (‖b‖/‖a‖), as medians over the first, middle and last 100 steps
  (medians: ‖b‖/‖a‖ has heavy tails where ‖a‖ is small).

``nsync-bench world mechanism`` writes it as Markdown and CSV beside a report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nsync_bench.metrics.registry import specs
from nsync_bench.world import render as wr

# The probe's endpoints this summary shows (world/endpoints.py declares them), then the metrics, in report order.
ENDPOINTS = ("leakage", "prompt_override", "nuisance_fidelity", "style_fidelity", "style_match_palette",
             "style_match_texture", "style_match_edge", *specs())
CURVES = ("grad/cos_pos_neg", "grad/norm_ratio_neg_pos")
WINDOW = 100  # steps per curve window


@dataclass
class RunRecord:
    arm: str  # the method, with the NSYNC rule where it is not the paper's: "nsync (code-v4.2)"
    seed: int
    metrics: dict[str, float]
    curves: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # first / middle / last medians


@dataclass
class Premise:
    arm: str
    reference: float  # the real images' leakage
    n: int
    wins: int  # seeds whose leakage is above the reference
    mean_excess: float
    p_t: float
    p_exact: float


def arm_label(params: dict[str, str]) -> str:
    method = params.get("run.method", "?")
    rule = params.get("nsync.rule", "paper")
    return f"{method} ({rule})" if method.startswith("nsync") and rule != "paper" else method


def window_medians(values: Sequence[float], window: int = WINDOW) -> tuple[float, float, float]:
    """Medians of the first, middle and last ``window`` values (nan where there are none)."""
    import numpy as np

    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    mid = v.size // 2
    middle = v[max(0, mid - window // 2): mid + window // 2]
    return (float(np.median(v[:window])), float(np.median(middle)), float(np.median(v[-window:])))


def nuisance_reference(style: str) -> float:
    """The real test images' leakage: the nuisance spread evenly over its values."""
    from nsync_bench.world.targets import NUISANCE_VALUES

    target = wr.target(style)
    if target.nuisance is None:
        from nsync_bench.errors import ConfigError

        raise ConfigError(f"{style} has no nuisance attribute, so there is nothing to leak; the mechanism summary "
                          f"needs a nuisance target ({', '.join(n for n, t in wr.TARGETS.items() if t.nuisance)}).")
    return 1.0 / len(NUISANCE_VALUES[target.nuisance])


def premise(records: Sequence[RunRecord], style: str, arm: str = "ti") -> Premise | None:
    """Does ``arm`` leak the nuisance more than real images carry it? None without two seeds of it."""
    from nsync_bench.stats.paired import paired_comparison

    reference = nuisance_reference(style)
    values = [r.metrics["leakage"] for r in sorted(records, key=lambda r: r.seed)
              if r.arm == arm and "leakage" in r.metrics]
    if len(values) < 2:
        return None
    # "lower is better" leakage, so the baseline (the reference) "wins" where the arm leaks more.
    result = paired_comparison([reference] * len(values), values, direction="lower")
    return Premise(arm, reference, len(values), sum(v > reference for v in values),
                   sum(values) / len(values) - reference, result.p_t, result.p_perm)


def load_records(tracking_uri: str, experiments: Sequence[str], style: str) -> list[RunRecord]:
    """The FINISHED runs of ``style`` in ``experiments``, with their endpoints and NSYNC curves."""
    from nsync_bench.errors import ConfigError
    from nsync_bench.tracking.tracker import client_for

    client = client_for(tracking_uri)
    ids = []
    for name in experiments:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise ConfigError(f"no experiment {name!r} in {tracking_uri}; list them in the MLflow UI "
                              "(nsync-bench ui) or pass --tracking-uri.")
        ids.append(experiment.experiment_id)
    runs = client.search_runs(ids, filter_string=f"attributes.status = 'FINISHED' and params.`run.style` = '{style}'",
                              max_results=10000)
    records = []
    for run in runs:
        params: dict[str, Any] = run.data.params
        metrics = {k.removeprefix("metrics/"): v for k, v in run.data.metrics.items()
                   if k.startswith("metrics/") and k.removeprefix("metrics/") in ENDPOINTS}
        record = RunRecord(arm_label(params), int(params.get("run.seed", -1)), metrics)
        if params.get("run.method", "").startswith("nsync"):
            for key in CURVES:
                history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
                record.curves[key] = window_medians([m.value for m in history])
        records.append(record)
    return sorted(records, key=lambda r: (r.arm, r.seed))


def render_markdown(records: Sequence[RunRecord], found: Premise | None, style: str,
                    experiments: Sequence[str]) -> str:
    lines = [f"# What the mechanism did: {style} ({', '.join(experiments)})", ""]
    if found is not None:
        lines += ["## The premise: does the reference arm leak the nuisance?", "",
                  f"{found.arm}'s leakage is above the real images' {found.reference:.3f} in {found.wins} of "
                  f"{found.n} seeds; mean excess {found.mean_excess:+.3f}; paired t p = {found.p_t:.3g}, exact "
                  f"sign-flip p = {found.p_exact:.3g} (two-sided).", ""]
    shown = [e for e in ENDPOINTS if any(e in r.metrics for r in records)]
    lines += ["## Endpoints per run", "", "| arm | seed | " + " | ".join(shown) + " |",
              "|---|---|" + "---|" * len(shown)]
    lines += [f"| {r.arm} | {r.seed} | " + " | ".join(f"{r.metrics[e]:.4g}" if e in r.metrics else "" for e in shown)
              + " |" for r in records]
    with_curves = [r for r in records if r.curves]
    if with_curves:
        lines += ["", f"## NSYNC's gradients during training (medians over the first / middle / last {WINDOW} steps)",
                  "", "| arm | seed | cos(a, b) | ‖b‖/‖a‖ |", "|---|---|---|---|"]
        lines += [f"| {r.arm} | {r.seed} | " + " | ".join(" / ".join(f"{x:.3f}" for x in r.curves.get(k, ()))
                                                          for k in CURVES) + " |" for r in with_curves]
    return "\n".join(lines) + "\n"


__all__ = ["CURVES", "ENDPOINTS", "Premise", "RunRecord", "arm_label", "load_records", "nuisance_reference",
           "premise", "render_markdown", "window_medians"]
