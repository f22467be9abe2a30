"""The assembled command line: importing each verb module registers its commands on the apps of
``cli/app.py``. The console script ``nsync-bench`` calls :func:`main`."""

from __future__ import annotations

from nsync_bench.cli import (  # noqa: F401  (imported for their registrations)
    bench,
    captions,
    claims,
    datasets,
    export,
    metrics,
    negatives,
    profiles,
    report,
    run,
    sweep,
    ui,
    weights,
    world,
)
from nsync_bench.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app(prog_name="nsync-bench")
