"""``nsync-bench world ...``: the toy world (a CPU-trained base model where personalization matters)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nsync_bench.cli.app import console, world_app
from nsync_bench.cli.options import SetOption, TrackingUriOption, WorldStyleArgument

# ruff: noqa: UP045
# (Typer needs Optional rather than X | None in option annotations.)
ThreadsOption = Annotated[int, typer.Option(help="CPU threads.")]
SeedOption = Annotated[int, typer.Option(help="Seed (same seed, same result).")]


@world_app.command("build")
def build_command(
    work_dir: Annotated[Path, typer.Option(help="Checkpoints go here; rerun to resume.")] = Path("world-build"),
    out: Annotated[
        Optional[Path], typer.Option(help="Where to write the exported weights (default: <work-dir>/weights).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Training steps (batch 32).")] = 6000,
    seed: SeedOption = 0,
    threads: Annotated[int, typer.Option(help="CPU threads (part of the result: CPU reductions depend on it).")] = 2,
    max_minutes: Annotated[
        Optional[float], typer.Option(help="Stop (checkpointed) after this long; rerun to continue.")
    ] = None,
) -> None:
    """Train the toy world's base model from scratch (resumable; exports EMA weights + sha256 manifest)."""
    from nsync_bench.cli.progress import RichProgress
    from nsync_bench.world.train import BuildConfig, build

    if max_minutes is not None and not max_minutes > 0:  # nan and negatives; inf means no limit
        from nsync_bench.errors import ConfigError

        raise ConfigError(f"--max-minutes {max_minutes!r} must be a positive number of minutes (or left out).")
    config = BuildConfig(seed=seed, steps=steps, threads=threads)
    done, finished = build(config, work_dir, out or work_dir / "weights", max_minutes, RichProgress())
    state = "finished" if finished else "stopped early (rerun the same command to continue)"
    console.print(f"{done}/{steps} steps, {state}; weights in {out or work_dir / 'weights'}")


@world_app.command("probe")
def probe_command(
    out: Annotated[
        Optional[Path], typer.Option(help="Where to write probe.safetensors (default: the shipped location).")
    ] = None,
    seed: SeedOption = 0,
    images: Annotated[int, typer.Option(help="Training renders.")] = 16000,
    epochs: Annotated[int, typer.Option(help="Passes over the training renders.")] = 4,
    threads: ThreadsOption = 2,
) -> None:
    """Train the toy world's probe CNN (the features of the `toy-world` metric extractors)."""
    import torch

    from nsync_bench.cli.progress import RichProgress
    from nsync_bench.world.model import WEIGHTS_DIR
    from nsync_bench.world.probe import save_probe, train_probe

    torch.set_num_threads(threads)
    probe, accuracy = train_probe(seed, images, epochs, RichProgress())
    digest = save_probe(probe, out or WEIGHTS_DIR, accuracy)
    console.print("held-out accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()))
    console.print(f"probe sha256 {digest}")


@world_app.command("control")
def control_command(
    style: WorldStyleArgument = "world-dusk",
    seeds: Annotated[str, typer.Option(help="Comma-separated run seeds.")] = "0,1,2,3,4",
    overrides: SetOption = None,
    out: Annotated[Path, typer.Option(help="Where control.md and control.json go.")] = Path("reports/world-control"),
    work_dir: Annotated[
        Optional[Path], typer.Option(help="Runs and images (default: <runs dir>/world-control).")
    ] = None,
) -> None:
    """The positive control: TI vs the untrained model prompted with the style's name, and the real-data floor."""
    from nsync_bench.world.control import positive_control, write_result

    result = positive_control(style, tuple(int(s) for s in seeds.split(",")), overrides or [], work_dir)
    write_result(result, out)
    console.print(result.markdown())
    console.print(f"{result.seconds:.0f} s; written to {out}")


@world_app.command("sanity")
def sanity_command(
    style: WorldStyleArgument = "world-dusk",
    n: Annotated[int, typer.Option(help="Images per set.")] = 96,
    extractors: Annotated[str, typer.Option(help="toy-world or smoke.")] = "toy-world",
) -> None:
    """Metric sanity: the target vs fresh draws of itself, its one-attribute neighbours and the other target."""
    from nsync_bench.world.sanity import sanity_markdown

    console.print(sanity_markdown(style, n, extractors))


@world_app.command("samples")
def samples_command(
    out: Annotated[Path, typer.Option(help="The grid (real | sample pairs).")] = Path("reports/world-samples.png"),
    weights: Annotated[
        Optional[Path], typer.Option(help="A toy-world weights folder (default: the committed one).")
    ] = None,
    seed: SeedOption = 0,
    threads: ThreadsOption = 2,
) -> None:
    """The base model's samples for every base style, next to real renders, and the probe's accuracy on them."""
    import torch

    from nsync_bench.world.grids import base_samples
    from nsync_bench.world.model import WEIGHTS_DIR, load_world_components
    from nsync_bench.world.probe import load_probe

    torch.set_num_threads(threads)
    probe, _ = load_probe(WEIGHTS_DIR)
    accuracy = base_samples(load_world_components(weights), probe, out, seed)
    console.print("probe accuracy on samples (prompted value): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in accuracy.items()))
    console.print(f"grid: {out}")


@world_app.command("endpoints")
def endpoints_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="Finished run folders (with config.json and eval/images).")],
    csv_out: Annotated[Optional[Path], typer.Option("--csv", help="Also write one row per run here.")] = None,
) -> None:
    """The probe's endpoints (style fidelity, leakage, ...) of finished toy-world runs, read off their
    evaluation images: for runs made before the endpoints were logged, or to check the logged values."""
    import csv
    import json

    from nsync_bench.errors import DataError
    from nsync_bench.metrics.endpoints import GeneratedSet
    from nsync_bench.pipeline.generation import read_manifest
    from nsync_bench.world.endpoints import ProbeEndpoints
    from nsync_bench.world.model import WEIGHTS_DIR

    probe_endpoints = ProbeEndpoints(WEIGHTS_DIR)
    rows = []
    for run_dir in run_dirs:
        config_file, image_dir = run_dir / "config.json", run_dir / "eval" / "images"
        if not config_file.is_file() or not (image_dir / "manifest.jsonl").is_file():
            raise DataError(f"{run_dir} is not a finished run folder (needs config.json and "
                            "eval/images/manifest.jsonl). Fix: pass folders under "
                            "<runs dir>/<experiment>/<style>/<method>/.")
        config = json.loads(config_file.read_text())["config"]
        style = config["run"]["style"]
        if not probe_endpoints.applies(style):
            raise DataError(f"{run_dir} is a run of style {style!r}, not a toy-world target: the probe's endpoints "
                            "exist only for the world's targets (world-dusk, world-etching, world-linen).")
        generated = read_manifest(image_dir)
        results = probe_endpoints.compute(GeneratedSet(style, tuple(image_dir / g.file for g in generated),
                                                       tuple(g.caption for g in generated)))
        rows.append({"run_dir": str(run_dir), "style": style, "method": config["run"]["method"],
                     "seed": config["run"]["seed"], "rule": config["nsync"]["rule"],
                     **{r.name: r.value for r in results}})
        console.print(f"{style} {config['run']['method']} seed {config['run']['seed']}: "
                      + ", ".join(f"{r.name} {r.value:.3f}" for r in results))
    if csv_out is not None:
        names = list(dict.fromkeys(k for row in rows for k in row))
        with csv_out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            writer.writerows(rows)
        console.print(f"written to {csv_out}")


@world_app.command("mechanism")
def mechanism_command(
    experiments: Annotated[list[str], typer.Option("--experiment", help="Experiment(s) holding the runs.")],
    style: Annotated[str, typer.Option(help="A nuisance target, e.g. world-linen.")] = "world-linen",
    out: Annotated[Optional[Path], typer.Option(help="Write mechanism.md and mechanism_runs.csv here.")] = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """What NSYNC's mechanism did on a nuisance target: whether TI leaks the nuisance (its leakage against
    the real images', with the t and exact tests), each run's endpoints, and NSYNC's cos(a, b) and |b|/|a|
    over training, read from MLflow (docs/toy-world.md)."""
    import csv
    import io

    from nsync_bench import paths
    from nsync_bench.io import atomic_write_text
    from nsync_bench.paths import check_tracking_uri
    from nsync_bench.world.mechanism import CURVES, ENDPOINTS, load_records, premise, render_markdown

    uri = paths.tracking_uri(tracking_uri)
    check_tracking_uri(uri, must_exist=True)
    records = load_records(uri, experiments, style)
    if not records:
        from nsync_bench.errors import DataError

        raise DataError(f"no finished run of {style} in {', '.join(experiments)} ({uri}).")
    text = render_markdown(records, premise(records, style), style, experiments)
    console.print(text, markup=False, highlight=False)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "mechanism.md", text)
        table = io.StringIO(newline="")
        writer = csv.writer(table)
        windows = [f"{k} {w}" for k in CURVES for w in ("first", "middle", "last")]
        writer.writerow(["arm", "seed", *ENDPOINTS, *windows])
        for r in records:
            writer.writerow([r.arm, r.seed, *(r.metrics.get(e, "") for e in ENDPOINTS),
                             *(x for k in CURVES for x in r.curves.get(k, ("", "", "")))])
        atomic_write_text(out / "mechanism_runs.csv", table.getvalue())
        console.print(f"written to {out}")
