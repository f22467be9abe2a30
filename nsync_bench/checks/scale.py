"""The full-size-architecture check (``nox -s scale``): SD 1.5 and SD 2-base at random weights.

Each architecture's real component configs (nsync_bench.models.architectures) are built once
with random weights and saved in the hub's diffusers layout; every run below then loads them
through the real ``pretrained`` path with the ``sd15`` / ``sd2`` profile at a small resolution:

* a few steps of TI, LoRA (every attention projection of the real UNet), NSYNC fused and
  three-pass (no latent cache, anchor pass), and NSYNC-LoRA, each with its evaluation images;
* TI interrupted after its first step and resumed from the checkpoint by running it again;
* the TI and LoRA adapters reloaded into a fresh pipeline with diffusers' own loaders, which must
  regenerate the run's first evaluation image;
* the real-architecture metric extractors (Inception-v3, CLIP ViT-L/14@336, CSD ViT-L) at random
  weights on the generated images.

Runs are untracked (no MLflow) and score nothing (no real metric weights here); everything is
written under one work folder. ``python -m nsync_bench.checks.scale --help``.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# The same method variants (and style) as the GPU check, at the full-size architectures.
from nsync_bench.checks.gpu import STYLE, VARIANTS
from nsync_bench.errors import NsyncBenchError
from nsync_bench.io import atomic_write_json
from nsync_bench.perf.timing import peak_memory_mb

log = logging.getLogger(__name__)



class ScaleCheckError(NsyncBenchError):
    """A full-size-architecture check failed; the message names the check and what differed."""


@dataclass
class ScaleSettings:
    resolution: int = 64
    steps: int = 2
    batch_size: int = 2
    eval_images: int = 2
    sampling_steps: int = 2
    archs: list[str] = field(default_factory=lambda: ["sd15", "sd2"])
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))

    def overrides(self, snapshot: Path) -> list[str]:
        return [f"model.pretrained={json.dumps(str(snapshot))}", f"model.resolution={self.resolution}",
                "device=cpu", f"train.max_steps={self.steps}", f"train.batch_size={self.batch_size}",
                "train.checkpoint_every=1", f"eval.max_prompts={self.eval_images}",
                f"eval.batch_size={self.eval_images}", f"eval.num_inference_steps={self.sampling_steps}",
                f"eval.save_size={self.resolution}", f"negatives.num_inference_steps={self.sampling_steps}",
                f"negatives.save_size={self.resolution}", "metrics.names=[]"]


def _interrupt_at(step: int) -> Any:
    def callback(current: int) -> None:
        if current == step:
            raise KeyboardInterrupt  # what Ctrl-C does: the trainer checkpoints, then re-raises
    return callback


def _run(arch: str, method: str, overrides: list[str], work: Path, callbacks: list | None = None) -> Any:
    from nsync_bench.pipeline.runner import RunOptions, run

    options = RunOptions(runs_dir=work / "runs", data_root=work / "data", track=False, experiment=f"scale-{arch}",
                         callbacks=list(callbacks or []))
    return run(style=STYLE, method=method, seed=0, profile=arch, protocol="matched", overrides=overrides,
               options=options)


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise ScaleCheckError(f"scale check failed: {what}")


def check_resume(arch: str, overrides: list[str], work: Path) -> dict[str, Any]:
    """TI interrupted after step 1 (checkpoint), then the same run again: it resumes and finishes."""
    started = time.perf_counter()
    try:
        _run(arch, "ti", overrides, work, callbacks=[_interrupt_at(1)])
    except KeyboardInterrupt:
        pass
    else:
        raise ScaleCheckError("scale check failed: the interrupted TI run finished instead of stopping at step 1")
    result = _run(arch, "ti", overrides, work)
    log_text = (result.run_dir / "run.log").read_text(encoding="utf-8")
    record = json.loads((result.run_dir / "result.json").read_text())
    _check("resumed from" in log_text, f"the second TI run did not resume from its checkpoint ({result.run_dir})")
    _check(record["steps"] >= 2, f"the resumed TI run ended at step {record['steps']}")
    return {"seconds": time.perf_counter() - started, "run_dir": str(result.run_dir)}


def check_adapters(snapshot: Path, ti_dir: Path, lora_dir: Path, settings: ScaleSettings) -> dict[str, Any]:
    """Reload both adapters with diffusers' loaders into a fresh pipeline; regenerate each run's images."""
    from PIL import Image

    from nsync_bench.config.run_config import EvalConfig
    from nsync_bench.models.diffusers_pipeline import build_pipeline
    from nsync_bench.models.pretrained import load_pretrained_components
    from nsync_bench.pipeline.generation import EvalPrompt, generate_batch, read_manifest

    started = time.perf_counter()
    pipe = build_pipeline(load_pretrained_components(str(snapshot)))
    eval_config = EvalConfig(num_inference_steps=settings.sampling_steps, save_size=settings.resolution,
                             batch_size=settings.eval_images)
    diffs: dict[str, int] = {}
    for name, run_dir in (("ti", ti_dir), ("lora", lora_dir)):
        if name == "ti":
            pipe.load_textual_inversion(str(ti_dir / "adapter" / "learned_embeds.safetensors"))
        else:
            pipe.load_lora_weights(str(lora_dir / "adapter"))
        manifest = read_manifest(run_dir / "eval" / "images")
        prompts = [EvalPrompt(m.index, m.caption, m.prompt, m.seed, m.source) for m in manifest]
        diffs[name] = 0
        for item, image in zip(manifest, generate_batch(pipe, prompts, eval_config, settings.resolution),
                               strict=True):
            with Image.open(run_dir / "eval" / "images" / item.file) as saved:
                diff = np.abs(np.asarray(image, dtype=np.int16) - np.asarray(saved, dtype=np.int16)).max()
            diffs[name] = max(diffs[name], int(diff))
        if name == "ti":
            pipe.unload_textual_inversion()  # the LoRA run's prompts name no learned token
    # CPU fp32: the same computation as the run's own evaluation, so the same pixels (1 level of slack
    # for a different reduction order in the reloaded modules).
    _check(all(d <= 1 for d in diffs.values()), f"reloaded adapters do not regenerate the runs' images: {diffs}")
    return {"seconds": time.perf_counter() - started, "max_pixel_diff": diffs}


def check_extractors(images: list[Path], work: Path) -> dict[str, Any]:
    """The reference extractor architectures (random weights) on the generated images."""
    from nsync_bench.metrics.scoring import extract_features
    from nsync_bench.perf.bench import reference_random_extractors
    from nsync_bench.progress import NullProgress

    results = {}
    for kind, extractor in reference_random_extractors(work).items():
        started = time.perf_counter()
        features = np.asarray(extract_features(extractor, images, batch_size=len(images), cache=None,
                                               progress=NullProgress(), label="scale"))
        _check(features.shape[0] == len(images) and np.isfinite(features).all(),
               f"{kind} features of shape {features.shape} (finite: {np.isfinite(features).all()})")
        results[kind] = {"id": extractor.implementation_id, "dim": int(features.shape[1]),
                         "seconds": time.perf_counter() - started}
    return results


# SD 1.5 and SD 2-base: 16 transformer blocks (2 per attention level down, 3 up, 1 mid), each with
# self- and cross-attention, each with to_q, to_k, to_v and to_out.0.
LORA_PROJECTIONS = 16 * 2 * 4


def _check_lora_coverage(adapter: Path, label: str) -> None:
    """The saved LoRA adapts every attention projection of the UNet."""
    from safetensors import safe_open

    with safe_open(str(adapter), framework="pt") as handle:
        # diffusers' format: <module>.lora.down.weight / <module>.lora.up.weight
        modules = {key.split(".lora.")[0] for key in handle.keys() if ".lora." in key}  # noqa: SIM118 - not a dict
    _check(len(modules) == LORA_PROJECTIONS and all(k.startswith("unet.") for k in modules),
           f"{label}: LoRA adapts {len(modules)} modules, expected every attention projection ({LORA_PROJECTIONS})")


def check_architecture(arch: str, settings: ScaleSettings, work: Path, cache_root: Path | None) -> dict[str, Any]:
    from nsync_bench.models.architectures import architecture, random_snapshot

    started = time.perf_counter()
    snapshot = random_snapshot(arch, cache_root)
    report: dict[str, Any] = {"snapshot": str(snapshot), "snapshot_s": time.perf_counter() - started,
                              "hub_id": architecture(arch)["hub_id"], "variants": {}}
    overrides = settings.overrides(snapshot)
    run_dirs: dict[str, Path] = {}
    for name in settings.variants:
        method, extra = VARIANTS[name]
        started = time.perf_counter()
        if name == "ti":
            report["resume"] = check_resume(arch, overrides, work)
            result = _run(arch, method, overrides, work)  # finished above: found, not recomputed
        else:
            result = _run(arch, method, [*overrides, *extra], work)
        images = sorted((result.run_dir / "eval" / "images").glob("*.png"))
        _check(len(images) == settings.eval_images, f"{arch}/{name} wrote {len(images)} evaluation images")
        _check((result.run_dir / result.adapter).exists(), f"{arch}/{name} saved no adapter")
        if method == "lora":
            _check_lora_coverage(result.run_dir / result.adapter, f"{arch}/{name}")
        run_dirs[name] = result.run_dir
        report["variants"][name] = {"seconds": time.perf_counter() - started, "run_dir": str(result.run_dir)}
        log.info("%s/%s done in %.1f s", arch, name, report["variants"][name]["seconds"])
        gc.collect()
    if "ti" in run_dirs and "lora" in run_dirs:
        report["adapters"] = check_adapters(snapshot, run_dirs["ti"], run_dirs["lora"], settings)
    report["eval_images"] = [str(p) for d in run_dirs.values() for p in sorted((d / "eval" / "images").glob("*.png"))]
    return report


def run_scale_check(settings: ScaleSettings, work: Path, cache_root: Path | None = None) -> dict[str, Any]:
    """Every check on every architecture; raises :class:`ScaleCheckError` on the first failure."""
    started = time.perf_counter()
    report: dict[str, Any] = {"settings": settings.__dict__, "archs": {}}
    for arch in settings.archs:
        report["archs"][arch] = check_architecture(arch, settings, work, cache_root)
        gc.collect()
    images = [Path(p) for arch in report["archs"].values() for p in arch["eval_images"]][:4]
    report["extractors"] = check_extractors(images, work)
    report["seconds"] = time.perf_counter() - started
    report["peak_rss_mb"] = peak_memory_mb("cpu")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nsync_bench.checks.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="Folder for data, runs and the report.")
    parser.add_argument("--cache", type=Path, default=None, help="Snapshot cache (default <cache dir>/random-arch).")
    parser.add_argument("--archs", default="sd15,sd2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ScaleSettings(resolution=args.resolution, steps=args.steps, archs=args.archs.split(","),
                             variants=args.variants.split(","))
    args.work.mkdir(parents=True, exist_ok=True)
    report = run_scale_check(settings, args.work, args.cache)
    atomic_write_json(args.work / "scale-report.json", report, indent=2, default=str)
    log.info("scale check passed in %.0f s, peak RSS %.0f MB; report: %s", report["seconds"], report["peak_rss_mb"],
             args.work / "scale-report.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
