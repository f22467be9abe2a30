"""How far a sweep has got and how long the rest should take (the sweep's live view reads it).

The estimate uses the runs this sweep has finished: each remaining run is expected to take the mean
time of the finished runs of its method (NSYNC costs about twice TI), or of all finished runs while
its method has none; a running run is expected to need that mean minus the time it has run so far.
The work left is shared by the parallel workers, but the sweep cannot end before its longest
remaining run. Skipped and failed runs count as done and carry no duration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

DONE = ("finished", "skipped", "failed", "busy")


@dataclass
class SweepProgress:
    parallel: int
    status: dict[str, str] = field(default_factory=dict)  # task label -> last status
    methods: dict[str, str] = field(default_factory=dict)  # task label -> method
    started: dict[str, float] = field(default_factory=dict)  # task label -> monotonic start of its run
    durations: dict[str, list[float]] = field(default_factory=dict)  # method -> seconds of finished runs

    def update(self, label: str, method: str, status: str, seconds: float | None = None,
               now: float | None = None) -> None:
        """Record a task's new status; ``seconds``: how long a finished run took."""
        self.status[label] = status
        self.methods[label] = method
        if status == "running":
            self.started[label] = time.monotonic() if now is None else now
        if status == "finished" and seconds:
            self.durations.setdefault(method, []).append(seconds)

    def counts(self) -> dict[str, int]:
        return {
            "total": len(self.status),
            "done": sum(1 for s in self.status.values() if s in DONE),
            "running": sum(1 for s in self.status.values() if s == "running"),
            "queued": sum(1 for s in self.status.values() if s == "queued"),
        }

    def expected(self, method: str) -> float | None:
        """The expected seconds of one run of ``method``: its finished runs' mean, else all finished runs'."""
        own = self.durations.get(method)
        if own:
            return sum(own) / len(own)
        every = [s for values in self.durations.values() for s in values]
        return sum(every) / len(every) if every else None

    def eta(self, now: float | None = None) -> float | None:
        """Seconds until every run is done, or None before any run has finished (nothing to go on)."""
        now = time.monotonic() if now is None else now
        left: list[float] = []
        for label, status in self.status.items():
            if status not in ("queued", "running"):
                continue
            expected = self.expected(self.methods[label])
            if expected is None:
                return None
            elapsed = now - self.started.get(label, now) if status == "running" else 0.0
            left.append(max(expected - elapsed, 0.0))
        if not left:
            return 0.0
        return max(sum(left) / max(self.parallel, 1), max(left))


def format_duration(seconds: float) -> str:
    """``1 h 02 min``, ``12 min 05 s``, ``42 s``."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
