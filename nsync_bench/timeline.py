"""Phase marks of one run, read by the start-up and toy benchmarks (``nsync-bench bench``).

A benchmark that starts ``nsync-bench run`` in a fresh process sets ``NSYNC_BENCH_TIMELINE`` to a file;
the run then appends one JSON line per phase boundary (``{"event": name, "t": wall-clock seconds}``).
The benchmark records the wall clock just before it starts the process and just after it exits, so the
phases are: process start and set-up up to the first training step, training, and the fixed cost after
training (adapter, evaluation images, scoring, MLflow). Without the variable nothing is written and a
mark costs one dictionary lookup.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

ENV = "NSYNC_BENCH_TIMELINE"
# The events a run marks, in order (a method that trains nothing marks no training steps).
FIRST_STEP = "first_step"
TRAINING_DONE = "training_done"
IMAGES_DONE = "images_done"
SCORING_DONE = "scoring_done"
RUN_DONE = "run_done"


def mark(event: str) -> None:
    """Append ``event`` with the current wall-clock time to the timeline file, if one is set."""
    path = os.environ.get(ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"event": event, "t": time.time()}) + "\n")


def step_marker(max_steps: int) -> Callable[[int], None]:
    """A trainer callback (called with the step just completed) marking the first and the last step."""

    def callback(step: int) -> None:
        if step == 1:
            mark(FIRST_STEP)
        if step == max_steps:
            mark(TRAINING_DONE)

    return callback


def read(path: Path) -> dict[str, float]:
    """``{event: time}`` from a timeline file (the last mark of an event wins)."""
    if not path.is_file():
        return {}
    marks: dict[str, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            marks[str(row["event"])] = float(row["t"])
    return marks


def phases(started: float, marks: dict[str, float], exited: float) -> dict[str, float]:
    """Seconds of each phase of one run, from the process start to its exit.

    ``to_first_step``: process start, imports, data, model, MLflow set-up and the first step;
    ``training``: the remaining steps; ``after_training``: adapter, evaluation images, scoring, MLflow
    (split into ``images``, ``scoring`` and ``logging`` when those marks exist); ``exit``: from the
    result to the end of the process.
    """
    out: dict[str, float] = {"total": exited - started}
    done = marks.get(RUN_DONE, exited)
    trained = marks.get(TRAINING_DONE)
    if FIRST_STEP in marks and trained is not None:
        out["to_first_step"] = marks[FIRST_STEP] - started
        out["training"] = trained - marks[FIRST_STEP]
        out["after_training"] = done - trained
    if trained is not None and IMAGES_DONE in marks and SCORING_DONE in marks:
        out["images"] = marks[IMAGES_DONE] - trained
        out["scoring"] = marks[SCORING_DONE] - marks[IMAGES_DONE]
        out["logging"] = done - marks[SCORING_DONE]
    out["exit"] = exited - done
    return out
