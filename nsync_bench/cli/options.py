"""Options shared by several verbs (Typer needs ``Optional`` rather than ``X | None`` here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nsync_bench.paths import default_experiment

# ruff: noqa: UP045
SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a config key, e.g. --set train.max_steps=10 (repeatable)."),
]
ProtocolOption = Annotated[Optional[str], typer.Option(help="Recipe per method (default: the profile's).")]
ExperimentOption = Annotated[
    Optional[str], typer.Option(help=f"MLflow experiment (default {default_experiment('<profile>')}).")
]
TrackingUriOption = Annotated[
    Optional[str], typer.Option(help="MLflow store (default: $MLFLOW_TRACKING_URI or ./mlflow.db).")
]
RunsDirOption = Annotated[Optional[Path], typer.Option(help="Run outputs (default: $NSYNC_BENCH_RUNS_DIR or ./runs).")]
DataRootOption = Annotated[
    Optional[Path], typer.Option(help="Datasets (default: $NSYNC_BENCH_DATA_ROOT or the user data dir).")
]
StyleArgument = Annotated[str, typer.Argument(help="Style name (see `nsync-bench data list`).")]
WorldStyleArgument = Annotated[str, typer.Argument(help="A toy-world target style (world-dusk or world-etching).")]
