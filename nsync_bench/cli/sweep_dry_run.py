"""Rich output of ``nsync-bench sweep --dry-run``."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from nsync_bench.sweep.matrix import SweepSpec
from nsync_bench.sweep.plan import SweepPlan

_ORDER = ("start", "resume", "retry", "skip")


def print_plan(console: Console, spec: SweepSpec, plan: SweepPlan) -> None:
    timed = plan.times is not None
    table = Table("run", "status", "steps left", *(("train h", "generate h", "score h") if timed else ()),
                  title=f"sweep {spec.experiment_name()} (dry run: nothing is started)")
    for run in sorted(plan.runs, key=lambda r: (_ORDER.index(r.status), r.task.label)):
        cells = [run.task.label, run.status, str(run.remaining_steps)]
        if timed:
            cells += [f"{run.train_s / 3600:.2f}", f"{run.generate_s / 3600:.3f}", f"{run.score_s / 3600:.3f}"]
        table.add_row(*cells)
    console.print(table)
    counts = plan.counts()
    parts = ", ".join(f"{counts[s]} to {s}" for s in _ORDER if counts.get(s))
    console.print(f"{len(plan.runs)} runs: {parts}")
    assumed = [style for style, (_, _, guess) in plan.image_counts.items() if guess]
    for style, (train, test, guess) in plan.image_counts.items():
        note = " (assumed: no data here yet)" if guess else ""
        console.print(f"  {style}: {train} training images, {test} test images{note}")
    if plan.times is None:
        console.print("No GPU-hour estimate: pass --step-time SECONDS (a TI step at batch 4) or --step-time "
                      "gpu.json (from `nsync-bench bench --profile sd15-arch --device cuda --json`).")
        return
    hours = plan.totals_hours()
    console.print("estimated device time: " + ", ".join(f"{k} {v:.1f} h" for k, v in hours.items() if k != "total")
                  + f" -> [bold]{hours['total']:.1f} GPU-hours[/bold] (from {plan.times.source})")
    if plan.times.derived:
        console.print("derived, not measured: " + ", ".join(plan.times.derived))
    if assumed:
        console.print(f"image counts assumed for {', '.join(assumed)}: fetch or import the data for exact counts.")
