"""Rich tables for ``nsync-bench bench``."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_tables(console: Console, results: dict[str, Any]) -> None:
    if results.get("startup"):
        print_startup(console, results["startup"])
    training = results.get("training")
    if training:
        table = Table("variant", "protocol", "batch", "median step (s)", "÷ TI", "memory (MB)", "host syncs/step",
                      title=f"training steps ({training['device']})", caption=f"memory: {training['memory_note']}")
        for name, row in training["methods"].items():
            syncs = row.get("host_transfers_per_step")
            table.add_row(name, row["protocol"], str(row["batch_size"]), f"{row['median_step_s']:.4f}",
                          f"{row['ratio_to_ti']:.2f}",
                          f"{row['peak_memory_mb']:.0f}" if row.get("peak_memory_mb") is not None else "-",
                          f"{syncs:.1f}" if syncs is not None else "-")
        console.print(table)
        for key, value in training.get("extra", {}).items():
            console.print(f"{key}: {value:.3f}")
    for key, title in (("metrics", "metric extractors"), ("reference_extractors", "reference architectures")):
        section = results.get(key)
        if not section:
            continue
        table = Table("extractor", "images/s", "implementation", title=f"{title} ({section['device']}, "
                      f"{section['n_images']} images of {section['image_size']} px)")
        for kind, row in section["extractors"].items():
            table.add_row(kind, f"{row['images_per_s']:.2f}", row["id"])
        console.print(table)
        evaluation = section.get("evaluation")
        if evaluation:
            console.print(f"evaluation of both sets: first {evaluation['first_s']:.2f} s, cached "
                          f"{evaluation['cached_s']:.3f} s -> speed-up x{evaluation['speedup']:.1f}")


def print_startup(console: Console, startup: dict[str, Any]) -> None:
    console.print(f"start-up: `{startup['run']}` {startup['run_s']:.1f} s vs `python -c \"{startup['baseline']}\"` "
                  f"{startup['baseline_s']:.1f} s -> ratio {startup['ratio']:.2f} "
                  f"(target <= {startup['target_ratio']})")


def print_gpu_check(console: Console, report: dict[str, Any]) -> None:
    """The GPU check: training table, generation and extractor rates, the fp16 paths."""
    env = report["environment"]
    console.print(f"GPU check {report['arch']} ({report['weights']} weights) at {report['resolution']} px on "
                  f"{env['device_name']} (torch {env['torch']}, CUDA {env['cuda']})")
    print_tables(console, {"training": {**report["training"], "extra": {}},
                           "reference_extractors": report["extractors"]})
    generation = report["training"].get("generation")
    if generation:
        console.print(f"generation: {generation['images_per_s']:.2f} images/s ({generation['num_inference_steps']} "
                      f"steps, CFG {generation['guidance_scale']}, batch {generation['batch_size']})")
    for name, row in report["training"]["methods"].items():
        fp16 = row["fp16"]
        console.print(f"{name}: {fp16['mixed_precision']}, UNet {fp16['unet_dtype']}, text encoder "
                      f"{fp16['text_encoder_dtype']}, SDPA {fp16['sdpa']}, GradScaler {fp16['grad_scaler']}")
        if "overflow_step" in row:
            console.print(f"  forced fp16 overflow step: {row['overflow_step']}")
