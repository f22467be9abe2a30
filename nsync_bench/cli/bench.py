"""``nsync-bench bench``: the project's benchmarks, as a table or JSON."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from nsync_bench.cli.app import app, console


@app.command()
def bench(
    profile: Annotated[str, typer.Option(help="Profile to benchmark (its model and metric extractors); sd15-arch or "
                                         "sd2-arch: the GPU check (full-size, random weights, 512 px).")] = "smoke",
    only: Annotated[str, typer.Option(help="Sections: all, metrics, training, extractors, startup, toy (today's "
                                      "toy path against the new one: minutes to an hour on 2 cores).")] = "all",
    repeats: Annotated[int, typer.Option(min=1, help="startup, toy: repetitions of each variant (alternating).")] = 2,
    n_images: Annotated[int, typer.Option(help="Images per set for the metric benchmark.")] = 64,
    device: Annotated[str, typer.Option(help="sd15-arch / sd2-arch (the GPU check): cuda.")] = "cuda",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Time training steps, generation and metrics; report medians and ratios measured in one run."""
    from nsync_bench.checks.gpu import ARCH_PROFILES

    if profile in ARCH_PROFILES:  # the GPU check: full-size architectures at random weights, 512 px
        from nsync_bench.checks.gpu import gpu_check

        report = gpu_check(ARCH_PROFILES[profile], device=device)
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            from nsync_bench.cli.bench_tables import print_gpu_check

            print_gpu_check(console, report)
        return
    from nsync_bench.config.recipes import load_profile
    from nsync_bench.config.run_config import MetricsConfig
    from nsync_bench.errors import ConfigError
    from nsync_bench.perf.bench import bench_metrics

    # "extractors": the reference architectures with random weights (their real CPU cost; slow).
    # "startup": a 10-step smoke run in a fresh process against importing diffusers' pipeline.
    sections = {"all": ("training", "metrics", "startup"), "metrics": ("metrics",), "training": ("training",),
                "extractors": ("extractors",), "startup": ("startup",), "toy": ("toy",)}
    if only not in sections:
        raise ConfigError(f"unknown --only {only!r}; choose one of: {', '.join(sections)}.")
    results: dict = {"profile": profile}
    if "training" in sections[only]:
        from nsync_bench.perf.training import bench_training

        results["training"] = bench_training(profile)
    if "metrics" in sections[only]:
        config = MetricsConfig.model_validate(load_profile(profile).config.get("metrics", {}))
        results["metrics"] = bench_metrics(config, n_images=n_images)
    if "extractors" in sections[only]:
        from nsync_bench.perf.bench import bench_reference_extractors

        results["reference_extractors"] = bench_reference_extractors()
    if "startup" in sections[only]:
        from nsync_bench.perf.startup import bench_startup

        results["startup"] = bench_startup(repeats=repeats)
    if "toy" in sections[only]:
        from nsync_bench.perf.toy import bench_toy

        results["toy"] = bench_toy(repeats=repeats)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    from nsync_bench.cli.bench_tables import print_tables

    print_tables(console, results)
