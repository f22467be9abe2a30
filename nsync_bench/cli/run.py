"""``nsync-bench run``: one (style, method, seed, profile, protocol) run."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from nsync_bench.cli.app import app, console
from nsync_bench.cli.options import (
    DataRootOption,
    ExperimentOption,
    ProtocolOption,
    RunsDirOption,
    SetOption,
    TrackingUriOption,
)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _dry_run(config: object, data_root: object) -> None:
    """Print the run's plan (pipeline.readiness) and exit 0 (ready) or 2 (something must be done first)."""
    from pathlib import Path

    from nsync_bench import paths
    from nsync_bench.cli.run_plan import print_run_plan
    from nsync_bench.config.run_config import RunConfig
    from nsync_bench.errors import NsyncBenchError
    from nsync_bench.pipeline.readiness import plan_run
    from nsync_bench.pipeline.runner import RunOptions, full_run_key

    assert isinstance(config, RunConfig)
    root = paths.data_root(Path(str(data_root)) if data_root else None)
    plan = plan_run(config, root)
    try:  # the key needs the data's digests: known once the data is here
        key = full_run_key(config, RunOptions(data_root=root)) if plan.ready else None
    except NsyncBenchError:
        key = None
    print_run_plan(console, plan, key)
    raise typer.Exit(0 if plan.ready else 2)


@app.command()
def run(
    style: Annotated[str, typer.Option(help="Style to learn (see `nsync-bench data list`).")],
    method: Annotated[str, typer.Option(help="ti | lora | nsync | nsync-lora | ldm")],
    seed: Annotated[int, typer.Option(help="Run seed; every method with the same seed shares its draws.")] = 0,
    profile: Annotated[str, typer.Option(help="What and where: smoke, sd15, sd2 (`nsync-bench profiles`).")] = "smoke",
    protocol: ProtocolOption = None,
    overrides: SetOption = None,
    experiment: ExperimentOption = None,
    tracking_uri: TrackingUriOption = None,
    runs_dir: RunsDirOption = None,
    data_root: DataRootOption = None,
    resume: Annotated[
        bool,
        typer.Option("--resume/--restart",
                     help="Skip if finished, else continue from the last checkpoint (default); or start over."),
    ] = True,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log to MLflow.")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what the run needs (downloads with size, revision "
                                          "and hash; missing steps with their commands) and exit: 0 when it can "
                                          "start, 2 when something must be done first.")] = False,
) -> None:
    """Train one method on one style, generate evaluation images, and log everything to MLflow."""
    from nsync_bench.cli.progress import RichProgress
    from nsync_bench.config.recipes import resolve_config

    config = resolve_config(style=style, method=method, seed=seed, profile=profile, protocol=protocol,
                            overrides=overrides)
    if dry_run:
        _dry_run(config, data_root)
    from nsync_bench.pipeline.runner import RunOptions, execute

    options = RunOptions(runs_dir=runs_dir, data_root=data_root, tracking_uri=tracking_uri, experiment=experiment,
                         track=track, resume="auto" if resume else "never", progress=RichProgress())
    # SIGTERM (a scheduler's preemption, `timeout`, `kill`) is handled like Ctrl-C: the trainer saves
    # a checkpoint at the last completed step, and the same command resumes from it.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = execute(config, options)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]; run the same command again to resume from the last checkpoint.")
        raise typer.Exit(130) from None
    from rich.table import Table

    verb = "already finished (same run key); not recomputed" if result.skipped else "finished"
    console.print(f"[bold green]run {result.run_key} {verb}[/]")
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("run dir", str(result.run_dir))
    table.add_row("adapter", str(result.run_dir / result.adapter))
    if result.mlflow_run_id:
        table.add_row("mlflow run", f"{result.mlflow_run_id} (browse: nsync-bench ui)")
    for name, value in sorted(result.metrics.items()):
        table.add_row(name, f"{value:.6g}")
    console.print(table, soft_wrap=True)
