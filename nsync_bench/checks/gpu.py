"""The GPU check (``nsync-bench bench --profile sd15-arch --device cuda --json``, or ``nox -s gpu``).

SD 1.5 (or SD 2-base: ``sd2-arch``) at full size with random weights (nsync_bench.models.
architectures), at 512 px with the profile's precision (fp16 mixed precision): steps/s and peak
CUDA memory of each method at the released batch sizes (protocol ``paper-code``: TI and LoRA 4,
NSYNC 2), generation images/s with the profile's sampler (50 steps, CFG 7.5), extractor images/s
(Inception-v3, CLIP ViT-L/14@336, CSD ViT-L at random weights), and the fp16 paths: GradScaler,
a forced overflow step (skipped, trainables untouched, scale backed off), half-precision frozen
modules and SDPA attention. Without CUDA it refuses before building anything.

Untracked (no MLflow), no metric weights, no network: it imports only what its wheelhouse carries
beside the target's own packages (nsync_bench.perf.wheelhouse). The JSON is :data:`SCHEMA` (docs/scale.md,
"The GPU check"); ``sweep --dry-run --step-time gpu.json`` reads it.

It fits a borrowed GPU's time: before starting it estimates its own duration from nominal H100 figures
(:data:`NOMINAL_H100_S`; the estimate must stay within :data:`BUDGET_S`, tested), records the estimate and
each section's measured seconds, and skips what is left (``{"skipped": ...}``) once the budget is spent, so
it always ends with its JSON.
"""

from __future__ import annotations

import gc
import logging
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nsync_bench.errors import NsyncBenchError
from nsync_bench.perf.timing import peak_memory_mb, reset_peak_memory, time_calls

log = logging.getLogger(__name__)

SCHEMA = "nsync-bench/gpu-check/1"
STYLE = "toy-pastel"
ARCH_PROFILES = {"sd15-arch": "sd15", "sd2-arch": "sd2"}
# name: (method, overrides) under protocol paper-code (the released batch sizes).
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "ti": ("ti", []),
    "lora": ("lora", []),
    "nsync": ("nsync", []),
    "nsync-three-pass": ("nsync", ["nsync.fused=false", "nsync.run_anchor=always", "train.cache_latents=false"]),
    "nsync-lora": ("nsync-lora", []),
}


BUDGET_S = 300.0  # the whole check on one H100, by its own estimate
# Nominal seconds on one H100 (fp16, 512 px; conservative): for the estimate only, never reported as measured.
NOMINAL_H100_S: dict[str, float] = {
    "start": 30.0,  # imports, CUDA initialisation, the toy style's images
    "snapshot": 120.0,  # building SD 1.5's random-weight snapshot on the CPU and saving it (first run only)
    "load": 12.0,  # one variant's components from the snapshot, onto the GPU
    "image_50_steps": 0.5,  # one evaluation image, 50 sampling steps with CFG
    "extractors": 45.0,  # three random-weight extractors built and timed on 32 images
}
NOMINAL_H100_STEP_S = {"ti": 0.3, "lora": 0.35, "nsync": 0.6, "nsync-three-pass": 1.2, "nsync-lora": 0.7}


def estimate_seconds(variants: list[str], warmup: int, steps: int, generation_images: int,
                     snapshot_cached: bool) -> float:
    """The check's own estimate of its duration on one H100, from :data:`NOMINAL_H100_S`."""
    nominal = NOMINAL_H100_S
    total = nominal["start"] + (0.0 if snapshot_cached else nominal["snapshot"]) + nominal["extractors"]
    for name in variants:
        step = NOMINAL_H100_STEP_S[name]
        total += nominal["load"] + (warmup + steps + 1) * step  # + the forced overflow / sampling extras
        if name == "ti":
            total += (1 + generation_images) * nominal["image_50_steps"]
    return total


class GpuUnavailableError(NsyncBenchError, RuntimeError):
    """The GPU check was asked to run without a CUDA device."""


def require_cuda(device: str) -> None:
    """Refuse cleanly, naming what is missing and what to run instead."""
    import torch

    if device != "cuda":
        raise GpuUnavailableError(
            f"the GPU check runs on --device cuda, not {device!r}: at 512 px a CPU would take hours. On a CPU, "
            "`nox -s scale` checks the same full-size architectures at 64 px.")
    if not torch.cuda.is_available():
        raise GpuUnavailableError(
            f"the GPU check needs CUDA, but torch {torch.__version__} sees no CUDA device (built with CUDA "
            f"{torch.version.cuda or 'none'}). Fix: run it on a GPU machine (docs/scale.md: 'The GPU check' says how "
            "to carry the wheels); on a CPU, `nox -s scale` checks the same architectures at 64 px.")


def _fp16_paths(training: Any) -> dict[str, Any]:
    """What precision each part ran in, and whether attention is PyTorch SDPA."""
    import torch

    method = training.method
    components, scaler = method.components, method.precision.scaler
    processors = sorted({type(p).__name__ for p in components.unet.attn_processors.values()})
    trainables = [t for t in method.trainable_state().values() if torch.is_tensor(t)]
    return {"mixed_precision": method.precision.mode, "grad_scaler": scaler.is_enabled(),
            "loss_scale": float(scaler.get_scale()) if scaler.is_enabled() else None,
            "unet_dtype": str(components.unet.dtype), "vae_dtype": str(components.vae.dtype),
            "text_encoder_dtype": str(components.text_encoder.dtype),
            "attention_processors": processors, "sdpa": processors == ["AttnProcessor2_0"],
            "trainables_finite": all(bool(torch.isfinite(t).all()) for t in trainables)}


def _overflow_step(training: Any) -> dict[str, Any]:
    """One step at an absurd loss scale: fp16 gradients overflow; the step must be skipped."""
    import torch

    trainer, scaler = training.trainer, training.method.precision.scaler
    if not scaler.is_enabled():
        return {"exercised": False, "reason": "GradScaler is active only for fp16 on CUDA"}
    before = {k: v.clone() for k, v in training.method.trainable_state().items() if torch.is_tensor(v)}
    scaler.update(new_scale=2.0**100)
    trainer.train_step()
    after = training.method.trainable_state()
    unchanged = all(torch.equal(before[k], after[k]) for k in before)
    scale = float(scaler.get_scale())
    return {"exercised": True, "trainables_unchanged": unchanged, "scale_after": scale,
            "backed_off": scale < 2.0**100, "ok": unchanged and scale < 2.0**100}


def _mixed_dtype_sampling(training: Any, config: Any) -> dict[str, Any]:
    """Sample as TI's negative set is rendered: fp32 text encoder (TI trains it), half-precision UNet."""
    from nsync_bench.config.run_config import EvalConfig
    from nsync_bench.models.diffusers_pipeline import build_pipeline
    from nsync_bench.pipeline.generation import EvalPrompt, generate_batch

    pipe = build_pipeline(training.method.components)
    sampling = EvalConfig(num_inference_steps=2, save_size=64)
    prompts = [EvalPrompt(k, "", f"a house {k} in the style of painting", k, "") for k in range(2)]
    try:
        images = generate_batch(pipe, prompts, sampling, config.model.resolution)
    except RuntimeError as err:
        return {"ok": False, "error": f"{type(err).__name__}: {err}"[:2000]}
    return {"ok": len(images) == 2, "text_encoder_dtype": str(pipe.text_encoder.dtype),
            "unet_dtype": str(pipe.unet.dtype)}


def _generation(training: Any, config: Any, device: str) -> dict[str, Any]:
    from nsync_bench.pipeline.generation import evaluation_prompts, generate_batch

    pipe = training.method.evaluation_pipeline()
    if pipe.device.type == "cuda" and pipe.unet.dtype != pipe.text_encoder.dtype:
        pipe.text_encoder.to(dtype=pipe.unet.dtype)  # as a run's evaluation does after training
    batch = config.eval.batch_size
    prompts = evaluation_prompts(0, ["a small house next to a tree"] * batch, ["bench"] * batch,
                                 training.method.evaluation_prompt)
    generate_batch(pipe, prompts[:1], config.eval, config.model.resolution)  # warm-up
    reset_peak_memory(device)
    [elapsed] = time_calls(lambda: generate_batch(pipe, prompts, config.eval, config.model.resolution), device=device)
    return {"images_per_s": batch / elapsed, "num_inference_steps": config.eval.num_inference_steps,
            "guidance_scale": config.eval.guidance_scale, "batch_size": batch, "resolution": config.model.resolution,
            "unet_dtype": str(pipe.unet.dtype), "peak_memory_mb": peak_memory_mb(device, cpu_rss=False)}


def _extractors(device: str, tmp: Path, n_images: int, batch_size: int, build: Callable[[Path], dict] | None
                ) -> dict[str, Any]:
    from nsync_bench.perf.bench import extractor_throughput, reference_random_extractors, synthetic_images

    images = synthetic_images(tmp / "extractor-images", n_images, 256, 0)
    rows = {}
    for kind, extractor in (build or reference_random_extractors)(tmp).items():
        extractor.to(device)
        rows[kind] = extractor_throughput(extractor, images, batch_size=batch_size, device=device)
        extractor.to("cpu")
    return {"device": device, "n_images": n_images, "image_size": 256, "extractors": rows}


def _environment(device: str) -> dict[str, Any]:
    import torch

    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor()}
    try:
        import diffusers
        import transformers

        info.update(diffusers=diffusers.__version__, transformers=transformers.__version__)
    except ImportError:  # pragma: no cover - both are required to get this far
        pass
    return info


def _variant(name: str, arch: str, profile: str | None, overrides: list[str], extra_overrides: list[str] | None,
             tmp: Path, device: str, warmup: int, steps: int, report: dict[str, Any]) -> dict[str, Any]:
    """Time one method variant; the TI variant also measures generation (into ``report``)."""
    from nsync_bench.config.recipes import resolve_config
    from nsync_bench.pipeline.runner import build_training

    method, extra = VARIANTS[name]
    config = resolve_config(style=STYLE, method=method, profile=profile or arch, protocol="paper-code",
                            overrides=[*overrides, *extra, *(extra_overrides or [])])
    training = build_training(config, data_root=tmp / "data", checkpoint_dir=tmp / "checkpoints" / name)
    assert training.trainer is not None, name  # every variant trains (ldm is not benchmarked)
    reset_peak_memory(device)
    median = statistics.median(time_calls(training.trainer.train_step, warmup=warmup, repeats=steps, device=device))
    batch = config.train.batch_size
    row = {"method": method, "protocol": "paper-code", "batch_size": batch, "median_step_s": median,
           "steps_per_s": 1 / median, "samples_per_s": batch / median,
           "peak_memory_mb": peak_memory_mb(device, cpu_rss=False),
           "fp16": _fp16_paths(training)}
    if name == "nsync":
        row["overflow_step"] = _overflow_step(training)
    if name == "ti":
        row["mixed_dtype_sampling"] = _mixed_dtype_sampling(training, config)
        report["training"]["generation"] = _generation(training, config, device)
    log.info("gpu check: %s median step %.3f s", name, median)
    return row


def gpu_check(arch: str = "sd15", *, device: str = "cuda", resolution: int = 512, warmup: int = 2, steps: int = 5,
              variants: list[str] | None = None, extractor_images: int = 32, cache_root: Path | None = None,
              profile: str | None = None, extra_overrides: list[str] | None = None,
              extractors: Callable[[Path], dict] | None = None, allow_cpu: bool = False,
              budget_s: float = BUDGET_S) -> dict[str, Any]:
    """Run the check; return the JSON-able report (:data:`SCHEMA`).

    ``allow_cpu``, ``profile``, ``extra_overrides`` and ``extractors`` (a factory of small stand-ins)
    exist for the CPU test of the schema with a tiny profile; the command line never sets them.
    Sections that would start after ``budget_s`` seconds are skipped (recorded as such).
    """
    import torch

    if not allow_cpu:
        require_cuda(device)
    from nsync_bench.data.procedural import render_procedural_style
    from nsync_bench.models.architectures import architecture, config_hash, random_snapshot

    started_all = time.perf_counter()
    names = variants or list(VARIANTS)
    from nsync_bench import paths

    root = Path(cache_root) if cache_root is not None else paths.cache_dir() / "random-arch"
    cached = profile is not None or (root / f"{arch}-seed0-{config_hash(arch)}" / "model_index.json").is_file()
    estimate = estimate_seconds(names, warmup, steps, 8, cached)
    log.info("gpu check: estimated %.0f s on one H100 (budget %.0f s)", estimate, budget_s)

    def over_budget() -> bool:
        return time.perf_counter() - started_all > budget_s
    overrides = [f"device={device}", f"model.resolution={resolution}", "metrics.names=[]",
                 f"train.max_steps={warmup + steps + 2}", "train.checkpoint_every=100000"]
    hub_id, snapshot_s = None, 0.0
    if profile is None:
        hub_id = architecture(arch)["hub_id"]
        started = time.perf_counter()
        snapshot = random_snapshot(arch, cache_root)
        overrides.append(f'model.pretrained="{snapshot}"')
        snapshot_s = time.perf_counter() - started
    report: dict[str, Any] = {"schema": SCHEMA, "arch": arch, "profile": profile or arch, "hub_id": hub_id,
                              "estimate_s": estimate, "budget_s": budget_s,
                              "sections_s": {"snapshot": snapshot_s} if profile is None else {},
                              "weights": "random", "device": device, "resolution": resolution,
                              "environment": _environment(device), "warmup_steps": warmup, "timed_steps": steps,
                              "training": {"protocol": "paper-code", "device": device, "methods": {},
                                           "memory_note": "peak CUDA memory allocated during the variant"}}
    with tempfile.TemporaryDirectory(prefix="nsync-gpu-check-") as tmp_name:
        tmp = Path(tmp_name)
        # The toy style at >= a quarter of the resolution (the data check's limit); its training images
        # double as the negative set, so no negative set is rendered (timings do not depend on pixels).
        style_dir = tmp / "data" / STYLE
        render_procedural_style(STYLE, style_dir, size=max(64, resolution // 2))
        overrides.append(f'nsync.negatives_dir="{style_dir / "train"}"')
        for name in names:
            if over_budget():
                report["training"]["methods"][name] = {"skipped": f"time budget of {budget_s:.0f} s spent"}
                continue
            started = time.perf_counter()
            try:
                report["training"]["methods"][name] = _variant(name, arch, profile, overrides, extra_overrides, tmp,
                                                               device, warmup, steps, report)
            except (RuntimeError, ImportError, NsyncBenchError) as err:  # e.g. CUDA OOM: the other figures still count
                log.error("gpu check: %s failed: %s", name, err)
                report["training"]["methods"][name] = {"error": f"{type(err).__name__}: {err}"[:2000]}
            report["sections_s"][name] = time.perf_counter() - started
            gc.collect()
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        ti = report["training"]["methods"].get("ti", {}).get("median_step_s")
        for row in report["training"]["methods"].values():
            if "median_step_s" in row:
                row["ratio_to_ti"] = row["median_step_s"] / ti if ti else None
        started = time.perf_counter()
        try:
            if over_budget():
                report["extractors"] = {"skipped": f"time budget of {budget_s:.0f} s spent", "extractors": {}}
            else:
                report["extractors"] = _extractors(device, tmp, extractor_images, min(16, extractor_images),
                                                   extractors)
        except (RuntimeError, ImportError) as err:  # torchvision (Inception) missing, OOM, ...
            log.error("gpu check: extractors failed: %s", err)
            report["extractors"] = {"error": f"{type(err).__name__}: {err}"[:2000], "extractors": {}}
        report["sections_s"]["extractors"] = time.perf_counter() - started
    report["seconds"] = time.perf_counter() - started_all
    return report
