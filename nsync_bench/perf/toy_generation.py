"""The generation part of the toy benchmark: 96 evaluation images, today's path against the new one.

Both variants draw the same images (the untrained toy-world model prompted as the ``ldm`` method prompts
it, world-dusk's test captions, the run seed's per-image latents) with the same pipeline object; they
differ only in the evaluation settings the speed levers change (:data:`nsync_bench.perf.toy.LEGACY`).
Repetitions alternate (today, new, today, new, ...), so load from other jobs on a shared machine hits
both. The new settings are also timed in ``workers`` processes of one thread each, the prompts split
between them: the placement a sweep uses on a multi-core CPU (one run per core).
"""

from __future__ import annotations

import statistics
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from nsync_bench.config.run_config import RunConfig


def evaluation_setup(config: RunConfig, data_root: Path | None) -> tuple[list[Any], list[Path]]:
    """The ``ldm`` evaluation prompts of ``config`` (all test captions) and the style's real test images."""
    from nsync_bench import paths
    from nsync_bench.data.styles import ensure_style_data, get_style, list_images, require_captions
    from nsync_bench.pipeline.generation import evaluation_prompts

    style = get_style(config.run.style)
    style_dir = ensure_style_data(style.name, paths.data_root(data_root))
    test = list_images(style_dir, style.test_split)
    template = config.eval.prompt_template
    prompts = evaluation_prompts(config.run.seed, require_captions(test), [t.path.name for t in test],
                                 lambda caption: template.format(caption=caption, token=style.display_name),
                                 config.eval.max_prompts)
    return prompts, [t.path for t in test]


def base_pipeline(config: RunConfig) -> Any:
    """The untrained base model's pipeline, with the config's device and thread count."""
    from nsync_bench.models.diffusers_pipeline import build_pipeline
    from nsync_bench.models.loading import components_for

    _, _, components = components_for(config)
    return build_pipeline(components)


def timed_generation(pipe: Any, prompts: list[Any], config: RunConfig, out_dir: Path) -> dict[str, float]:
    """Wall and CPU seconds of generating (and writing) every prompt's image."""
    from nsync_bench.pipeline.generation import generate_images

    wall, cpu = time.perf_counter(), time.process_time()
    generate_images(pipe, prompts, config.eval, config.model.resolution, out_dir)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def load_images(folder: Path) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))])


def pixel_difference(a: Path, b: Path) -> dict[str, float]:
    """How two folders of images (same file names) differ: largest change of a channel value (0-255) and
    the fraction of channel values that changed."""
    left, right = load_images(a), load_images(b)
    diff = np.abs(left.astype(np.int16) - right.astype(np.int16))
    return {"max_abs": float(diff.max()), "changed_fraction": float((diff > 0).mean())}


def scores(folder: Path, real: list[Path], config: RunConfig) -> dict[str, float]:
    """The profile's metrics of a folder of generated images against the real test images."""
    from nsync_bench.metrics.scoring import score_image_sets

    report = score_image_sets(sorted(folder.glob("*.png")), real, config.metrics)
    return {name: result.value for name, result in report.results.items()}


_SIGNALS: dict[str, Any] = {}


def _keep_signals(ready: Any, go: Any) -> None:
    """Worker initializer: synchronisation primitives reach a spawned process only this way."""
    _SIGNALS.update(ready=ready, go=go)


def _worker(config_json: str, prompts: list[Any], out_dir: str) -> float:
    """One generation process: build the pipeline, wait for the common start, generate its prompts."""
    config = RunConfig.model_validate_json(config_json)
    pipe = base_pipeline(config)
    _SIGNALS["ready"].release()
    _SIGNALS["go"].wait()
    return timed_generation(pipe, prompts, config, Path(out_dir))["wall_s"]


def parallel_generation(config: RunConfig, prompts: list[Any], out_dir: Path, workers: int) -> float:
    """Wall seconds from a common start until ``workers`` one-thread processes have generated their
    contiguous share of ``prompts`` (each built its pipeline before the start)."""
    from concurrent.futures import ProcessPoolExecutor

    context = get_context("spawn")
    ready, go = context.Semaphore(0), context.Event()
    shares = [list(part) for part in np.array_split(np.array(prompts, dtype=object), workers)]
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_keep_signals, initargs=(ready, go)) as pool:
        futures = [pool.submit(_worker, config.model_dump_json(), share, str(out_dir)) for share in shares]
        for _ in shares:
            ready.acquire()
        started = time.perf_counter()
        go.set()
        for future in futures:
            future.result()
        return time.perf_counter() - started


def bench_generation(legacy: RunConfig, new: RunConfig, work: Path, *, repeats: int, workers: int,
                     data_root: Path | None = None) -> dict[str, Any]:
    """Today's and the new evaluation settings on the same images, alternating; ratios of medians."""
    prompts, real = evaluation_setup(new, data_root)
    pipe = base_pipeline(new)
    variants = {"today": legacy, "new": new}
    times: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    timed_generation(pipe, prompts[:2], new, work / "warm-up")
    for r in range(repeats):
        for name, config in variants.items():
            times[name].append(timed_generation(pipe, prompts, config, work / f"{name}-{r}"))
    result: dict[str, Any] = {"images": len(prompts), "style": new.run.style, "seed": new.run.seed,
                              "num_inference_steps": new.eval.num_inference_steps,
                              "guidance_scale": new.eval.guidance_scale, "variants": {}}
    for name, config in variants.items():
        result["variants"][name] = {
            "settings": {"batch_size": config.eval.batch_size, "cpu_precision": config.eval.cpu_precision,
                         "cpu_threads": config.cpu_threads, "processes": 1},
            "wall_s": statistics.median(t["wall_s"] for t in times[name]),
            "cpu_s": statistics.median(t["cpu_s"] for t in times[name]),
            "metrics": scores(work / f"{name}-{repeats - 1}", real, config)}
    today, fresh = result["variants"]["today"], result["variants"]["new"]
    result["ratio"] = today["wall_s"] / fresh["wall_s"]
    result["cpu_ratio"] = today["cpu_s"] / fresh["cpu_s"]
    result["pixels_today_vs_new"] = pixel_difference(work / "today-0", work / "new-0")
    result["metric_delta"] = {k: fresh["metrics"][k] - today["metrics"][k] for k in today["metrics"]}
    if workers > 1:
        walls = [parallel_generation(new, prompts, work / f"parallel-{r}", workers) for r in range(repeats)]
        result["parallel"] = {"processes": workers, "wall_s": statistics.median(walls),
                              "ratio": today["wall_s"] / statistics.median(walls),
                              # exact at the image level: a prompt's pixels do not depend on its batch
                              "pixels_vs_new": pixel_difference(work / "new-0", work / "parallel-0")}
    return result
