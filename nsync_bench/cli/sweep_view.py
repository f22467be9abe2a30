"""The live status table of ``nsync-bench sweep`` and its closing summary."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

STATUSES = ("queued", "running", "finished", "skipped", "failed", "busy", "killed")
COLOURS = {"queued": "white", "running": "cyan", "finished": "green", "skipped": "blue", "failed": "red",
           "busy": "yellow", "killed": "magenta"}


class SweepView:
    def __init__(self, console: Console, parallel: int = 1) -> None:
        from nsync_bench.sweep.progress import SweepProgress

        self.console = console
        self.status: dict[str, str] = {}
        self.started: dict[str, float] = {}
        self.progress = SweepProgress(parallel)
        self.live = Live(self._render(), console=console, refresh_per_second=2, transient=False)

    def __enter__(self) -> SweepView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.update(self._render())
        self.live.__exit__(*exc)

    def update(self, task: Any, status: str, result: Any) -> None:
        self.status[task.label] = status
        if status == "running":
            self.started[task.label] = time.monotonic()
        self.progress.update(task.label, task.method, status, getattr(result, "seconds", None))
        self.live.update(self._render())

    def headline(self) -> str:
        """``12/50 runs done, 2 running, 36 queued; about 14 min 20 s left (2 workers)``."""
        from nsync_bench.sweep.progress import format_duration

        c = self.progress.counts()
        eta = self.progress.eta()
        left = "time left: known after the first run finishes" if eta is None else f"about {format_duration(eta)} left"
        return (f"{c['done']}/{c['total']} runs done, {c['running']} running, {c['queued']} queued; {left} "
                f"({self.progress.parallel} worker{'s' if self.progress.parallel != 1 else ''})")

    def _render(self) -> Group:
        counts = Table(*[f"[{COLOURS[s]}]{s}[/]" for s in STATUSES], title="sweep", caption=self.headline())
        counts.add_row(*[str(sum(1 for v in self.status.values() if v == s)) for s in STATUSES])
        running = Table("running", "for", box=None)
        for label, status in self.status.items():
            if status == "running":
                running.add_row(label, f"{time.monotonic() - self.started.get(label, time.monotonic()):.0f} s")
        return Group(counts, running) if running.row_count else Group(counts)

    def print_interrupted(self, results: list[Any]) -> None:
        stopped = [r for r in results if r.status == "killed"]
        self.console.print()
        self.console.print(f"[yellow]interrupted[/]: {len(stopped)} running run(s) saved a checkpoint, were marked "
                           "KILLED in MLflow and released their locks; run the same command again to resume them "
                           "(finished runs are skipped).", soft_wrap=True)

    def print_summary(self, summary: Any, tracking_uri: str | None) -> None:
        counts = summary.counts()
        self.console.print()
        self.console.print("sweep done: " + ", ".join(f"[{COLOURS.get(k, 'white')}]{v} {k}[/]"
                                                       for k, v in sorted(counts.items())))
        failed = [r for r in summary.results if r.status in ("failed", "busy", "killed")]
        if failed:
            table = Table("run", "status", "error", "log", title="not finished")
            for column in table.columns:
                column.overflow = "fold"
            for result in failed:
                table.add_row(result.label, result.status, result.error.splitlines()[0] if result.error else "",
                              result.log_path)
            self.console.print(table)
            self.console.print("rerun only these with the same command plus [bold]--retry-failed[/]")
        uri = f" --tracking-uri {tracking_uri}" if tracking_uri else ""
        self.console.print(f"report: [bold]nsync-bench report --experiment {summary.experiment}{uri}[/]",
                           soft_wrap=True)
