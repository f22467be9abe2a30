"""``nsync-bench sweep``: the styles x methods x seeds matrix, locally or on Slurm, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

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

if TYPE_CHECKING:
    from nsync_bench.sweep.matrix import SweepSpec

# ruff: noqa: UP045 - typer needs Optional

SlurmLogsOption = Annotated[Path, typer.Option(help="Per-job logs folder.", rich_help_panel="Slurm")]

def _csv(text: str | None) -> list[str]:
    """A comma list without blanks; repeats are :func:`_once`'s to drop."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _once(values: list, option: str) -> list:
    """``values`` without repeats (``ti,ti`` names one method; a run key is one task), saying so."""
    from collections import Counter

    from nsync_bench.sweep.matrix import unique

    repeated = sorted(str(v) for v, count in Counter(values).items() if count > 1)
    if repeated:
        console.print(f"[yellow]{option} names {', '.join(repeated)} more than once; each runs once.[/]")
    return unique(values)


def _print_claims_notes(spec: SweepSpec) -> None:
    """Before anything runs: the families of the claims file whose declared test cannot reach alpha with
    these seeds (e.g. "5 seeds cannot reach 0.05 with an exact test; need >= 6, or >= 8 with Holm over 4")."""
    from nsync_bench.report.claims import load_claims
    from nsync_bench.report.claims_plan import reach_notes

    claims = load_claims(spec.claims)
    notes = reach_notes(claims, len(set(spec.seeds)), list(spec.styles), list(spec.methods))
    for note in notes:
        console.print(f"[yellow]claims ({claims.path.name if claims.path else 'given'}):[/] {note}.", soft_wrap=True,
                      highlight=False)


@app.command()
def sweep(
    file: Annotated[Optional[str], typer.Option(help="A sweep file: name in baselines/sweeps or a path.")] = None,
    styles: Annotated[Optional[str], typer.Option(help="Comma list, e.g. monet,vangogh.")] = None,
    methods: Annotated[Optional[str], typer.Option(help="Comma list of ti,lora,nsync,nsync-lora,ldm.")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="Comma list, e.g. 0,1,2.")] = None,
    profile: Annotated[Optional[str], typer.Option(help="Profile (default smoke, or the file's).")] = None,
    protocol: ProtocolOption = None,
    overrides: SetOption = None,
    experiment: ExperimentOption = None,
    executor: Annotated[str, typer.Option(help="local or slurm.")] = "local",
    max_parallel: Annotated[Optional[int], typer.Option(
        min=1, help="Local worker processes (1: in this process). Default: one per core on CPU profiles whose runs "
                    "use one thread (smoke, toy), else 1.")] = None,
    devices: Annotated[Optional[str], typer.Option(help="GPUs for local workers, one each, e.g. 0,1,2,3.")] = None,
    retry_failed: Annotated[bool, typer.Option(help="Rerun only the runs that failed last time.")] = False,
    tracking_uri: TrackingUriOption = None,
    runs_dir: RunsDirOption = None,
    data_root: DataRootOption = None,
    weights_dir: Annotated[Optional[Path], typer.Option(help="Metric weights folder.")] = None,
    partition: Annotated[Optional[str], typer.Option(help="Slurm partition.", rich_help_panel="Slurm")] = None,
    gpus: Annotated[int, typer.Option(help="GPUs per job.", rich_help_panel="Slurm")] = 1,
    cpus: Annotated[int, typer.Option(help="CPUs per job.", rich_help_panel="Slurm")] = 8,
    mem_gb: Annotated[int, typer.Option(help="Memory per job (GB).", rich_help_panel="Slurm")] = 32,
    time_min: Annotated[int, typer.Option(help="Time limit per job (minutes).", rich_help_panel="Slurm")] = 1440,
    array_parallelism: Annotated[int, typer.Option(help="Jobs of the array running at once.",
                                                   rich_help_panel="Slurm")] = 16,
    slurm_logs: SlurmLogsOption = Path("slurm-logs"),
    slurm_cluster: Annotated[Optional[str], typer.Option(help="submitit cluster: slurm (default) or local.",
                                                         rich_help_panel="Slurm")] = None,
    allow_sqlite: Annotated[bool, typer.Option("--allow-sqlite", help="Use an SQLite store with Slurm anyway (all "
                                               "jobs on one node).", rich_help_panel="Slurm")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the runs it would start, resume, retry or "
                                          "skip and estimate GPU-hours; run nothing.")] = False,
    step_time: Annotated[Optional[str], typer.Option(help="For --dry-run: seconds per TI step at batch 4, or the "
                                                     "GPU check's JSON (bench --profile sd15-arch --json).")] = None,
    claims: Annotated[Optional[str], typer.Option(
        help="The claims file the sweep answers (name in baselines/claims/ or a path; default: the sweep file's, "
             "else baselines/claims.toml): checked against the seeds before anything runs.")] = None,
) -> None:
    """Run every (style, method, seed) of a matrix; finished runs are skipped, interrupted ones resume."""
    from nsync_bench.cli.sweep_view import SweepView
    from nsync_bench.errors import ConfigError
    from nsync_bench.sweep.executors import SlurmSettings, make_executor
    from nsync_bench.sweep.matrix import SweepOptions, SweepSpec, load_sweep_file, run_sweep

    spec = load_sweep_file(file) if file else SweepSpec(styles=[], methods=[], seeds=[])
    spec.styles = _once(_csv(styles), "--styles") or spec.styles
    spec.methods = _once(_csv(methods), "--methods") or spec.methods
    try:
        seed_list = [int(s) for s in _csv(seeds)]
    except ValueError:
        raise ConfigError(f"--seeds {seeds!r} must be a comma list of integers, e.g. 0,1,2.") from None
    spec.seeds = _once(seed_list, "--seeds") or spec.seeds
    spec.profile = profile or spec.profile
    spec.protocol = protocol or spec.protocol
    spec.overrides = [*spec.overrides, *(overrides or [])]
    spec.experiment = experiment or spec.experiment
    spec.claims = claims or spec.claims
    if not (spec.styles and spec.methods and spec.seeds):
        raise ConfigError("name --styles, --methods and --seeds (or a --file with them), e.g. "
                          "`nsync-bench sweep --styles toy-pastel --methods ti,nsync --seeds 0,1,2`.")
    _print_claims_notes(spec)
    options = SweepOptions(runs_dir=str(runs_dir) if runs_dir else None,
                           data_root=str(data_root) if data_root else None, tracking_uri=tracking_uri,
                           weights_dir=str(weights_dir) if weights_dir else None)
    from nsync_bench import paths
    from nsync_bench.sweep.executors import check_store_for_executor

    check_store_for_executor(executor, paths.tracking_uri(tracking_uri), slurm_cluster, allow_sqlite)
    if dry_run:
        from nsync_bench.cli.sweep_dry_run import print_plan
        from nsync_bench.sweep.plan import parse_step_time, plan_sweep

        times = parse_step_time(step_time) if step_time else None
        print_plan(console, spec, plan_sweep(spec, options, times, retry_failed=retry_failed))
        return
    slurm = SlurmSettings(partition=partition, gpus_per_node=gpus, cpus_per_task=cpus, mem_gb=mem_gb,
                          timeout_min=time_min, array_parallelism=array_parallelism, folder=str(slurm_logs),
                          cluster=slurm_cluster)
    if max_parallel is None:
        from nsync_bench.config.recipes import resolve_config
        from nsync_bench.sweep.executors import default_parallel

        first = resolve_config(style=spec.styles[0], method=spec.methods[0], seed=spec.seeds[0], profile=spec.profile,
                               protocol=spec.protocol, overrides=spec.overrides)
        max_parallel = default_parallel(first)
    try:
        runner = make_executor(executor, max_parallel=max_parallel, slurm=slurm,
                               devices=_once(_csv(devices), "--devices") or None)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    from nsync_bench.sweep.interrupts import SweepInterrupted, interrupt_on_sigterm

    interrupt_on_sigterm()  # SIGTERM stops the sweep as Ctrl-C does: checkpoints, KILLED runs, no orphans
    workers = getattr(runner, "max_parallel", 1) if executor == "local" else array_parallelism
    view = SweepView(console, workers)
    try:
        with view:
            summary = run_sweep(spec, runner, options, retry_failed=retry_failed, on_event=view.update)
    except KeyboardInterrupt as stop:
        view.print_interrupted(stop.results if isinstance(stop, SweepInterrupted) else [])
        raise typer.Exit(130) from None
    view.print_summary(summary, tracking_uri)
    if summary.counts().get("killed"):  # stopped by a signal (a scheduler's, say): the sweep is not done
        raise typer.Exit(130)
    if summary.counts().get("failed"):
        raise typer.Exit(1)
