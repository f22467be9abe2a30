"""Training-step and generation benchmarks (``nsync-bench bench --only training``).

All variants are timed in one process on the same profile, after warm-up, as per-step medians,
and reported as ratios to Textual Inversion — ratios measured in one run are comparable across
machines where absolute times are not. Variants, at the same positive batch size and rule
``code-v4.2`` (the released default):

* ``ti``, ``lora`` — the baselines;
* ``nsync`` — fused (one pass over positive + negative samples, cached latents);
* ``nsync-three-pass`` — the released code's structure: positive, negative and anchor passes
  one after another, each encoding its images with the VAE, the anchor computed and discarded;
* ``nsync-lora`` — fused, on LoRA;
* ``ti-paper-code``, ``nsync-paper-code`` — both under the ``paper-code`` protocol, where NSYNC's
  batch is half of TI's (and the whole embedding matrix trains, as released).

Each variant also reports its host transfers per step (nsync_bench.perf.syncs): the points where a GPU
run waits for the device; the trainer's design is one per step.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from nsync_bench.perf.syncs import transfers_per_step
from nsync_bench.perf.timing import peak_memory_mb, reset_peak_memory, time_calls

SYNC_STEPS = 3  # steps over which host transfers are counted (nsync_bench.perf.syncs)

VARIANTS: dict[str, tuple[str, str, list[str]]] = {
    # name: (method, protocol, overrides)
    "ti": ("ti", "matched", []),
    "lora": ("lora", "matched", []),
    "nsync": ("nsync", "matched", ["nsync.rule=code-v4.2"]),
    "nsync-three-pass": ("nsync", "matched", ["nsync.rule=code-v4.2", "nsync.fused=false",
                                              "nsync.run_anchor=always", "train.cache_latents=false"]),
    "nsync-lora": ("nsync-lora", "matched", ["nsync.rule=code-v4.2"]),
    "ti-paper-code": ("ti", "paper-code", []),
    "nsync-paper-code": ("nsync", "paper-code", []),
}


def bench_training(profile: str = "smoke", *, style: str = "toy-pastel", warmup: int = 3, steps: int = 15,
                   data_root: Path | None = None, variants: list[str] | None = None) -> dict[str, Any]:
    """Per-step medians of each variant, ratios to TI, peak memory, and generation images/s."""
    from nsync_bench import paths
    from nsync_bench.config.recipes import resolve_config
    from nsync_bench.pipeline.runner import build_training

    results: dict[str, Any] = {"methods": {}, "extra": {}}
    with tempfile.TemporaryDirectory(prefix="nsync-bench-") as tmp:
        for name in variants or list(VARIANTS):
            method, protocol, overrides = VARIANTS[name]
            config = resolve_config(style=style, method=method, profile=profile, protocol=protocol,
                                    overrides=[*overrides, f"train.max_steps={warmup + steps + 1 + SYNC_STEPS}"])
            training = build_training(config, data_root=paths.data_root(data_root), checkpoint_dir=Path(tmp) / name)
            device = str(training.method.device)
            assert training.trainer is not None, name  # every variant trains (ldm is not benchmarked)
            reset_peak_memory(device)
            times = time_calls(training.trainer.train_step, warmup=warmup, repeats=steps, device=device)
            results["device"] = device
            results["memory_note"] = ("peak CUDA memory allocated during the variant" if device.startswith("cuda")
                                      else "process peak RSS so far (CPU: cumulative over variants)")
            results["methods"][name] = {"method": method, "protocol": protocol,
                                        "batch_size": config.train.batch_size,
                                        "median_step_s": statistics.median(times),
                                        "peak_memory_mb": peak_memory_mb(device),
                                        # a whole step: gradients, update, finiteness check, logs
                                        "host_transfers_per_step": transfers_per_step(training.trainer.train_step,
                                                                                      SYNC_STEPS)}
            if name == "ti":
                results["extra"]["generation_images_per_s"] = _generation_rate(training, config)
    ti = results["methods"].get("ti", {}).get("median_step_s")
    for row in results["methods"].values():
        row["ratio_to_ti"] = row["median_step_s"] / ti if ti else float("nan")
    methods = results["methods"]
    if "nsync" in methods and "nsync-three-pass" in methods:
        results["extra"]["nsync_fused_over_three_pass"] = (methods["nsync"]["median_step_s"]
                                                           / methods["nsync-three-pass"]["median_step_s"])
    if "nsync-paper-code" in methods and "ti-paper-code" in methods:
        results["extra"]["paper_code_nsync_over_ti"] = (methods["nsync-paper-code"]["median_step_s"]
                                                        / methods["ti-paper-code"]["median_step_s"])
    return results


def _generation_rate(training: Any, config: Any) -> float:
    """Evaluation images per second with the profile's sampler settings and eval batch size."""
    from nsync_bench.pipeline.generation import evaluation_prompts, generate_batch

    pipe = training.method.evaluation_pipeline()
    prompts = evaluation_prompts(0, ["a small house next to a tree"] * config.eval.batch_size,
                                 ["bench"] * config.eval.batch_size, training.method.evaluation_prompt)
    generate_batch(pipe, prompts[:1], config.eval, config.model.resolution)  # warm-up
    [elapsed] = time_calls(lambda: generate_batch(pipe, prompts, config.eval, config.model.resolution),
                           device=str(training.method.device))
    return len(prompts) / elapsed
