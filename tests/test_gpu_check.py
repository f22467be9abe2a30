"""The GPU check: it refuses without CUDA, and its JSON schema (checked on CPU with the tiny profile)."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from nsync_bench.checks.gpu import SCHEMA, GpuUnavailableError, gpu_check, require_cuda
from nsync_bench.cli.main import app
from nsync_bench.sweep.plan import step_times_from_json

METHOD_KEYS = {"method", "protocol", "batch_size", "median_step_s", "steps_per_s", "samples_per_s", "peak_memory_mb",
               "fp16", "ratio_to_ti"}
FP16_KEYS = {"mixed_precision", "grad_scaler", "loss_scale", "unet_dtype", "vae_dtype", "text_encoder_dtype",
             "attention_processors", "sdpa", "trainables_finite"}


def _smoke_extractors(tmp):
    from nsync_bench.config.run_config import MetricsConfig
    from nsync_bench.metrics.scoring import extractors_for

    return {e.kind: e for e in extractors_for(MetricsConfig(extractors="smoke", device="cpu"))}


def test_refuses_cleanly_without_cuda():
    with pytest.raises(GpuUnavailableError, match=r"needs CUDA.*nox -s scale"):
        require_cuda("cuda")
    with pytest.raises(GpuUnavailableError, match="--device cuda, not 'cpu'"):
        require_cuda("cpu")
    result = CliRunner().invoke(app, ["bench", "--profile", "sd15-arch", "--device", "cuda", "--json"])
    assert result.exit_code != 0
    assert "needs CUDA" in result.output and "Traceback" not in result.output


def test_refusal_builds_nothing_and_imports_no_tracking(tmp_path):
    # Refusal comes before any snapshot is built; the check's modules pull in no MLflow or open_clip.
    code = ("import sys\nfrom nsync_bench.checks.gpu import gpu_check, GpuUnavailableError\n"
            "import nsync_bench.pipeline.runner, nsync_bench.config.recipes, nsync_bench.models.architectures\n"
            "try:\n    gpu_check('sd15', cache_root=sys.argv[1])\nexcept GpuUnavailableError:\n    pass\n"
            "print(sorted(m for m in ('mlflow', 'open_clip', 'cleanfid', 'submitit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_json_schema_on_cpu_with_the_tiny_profile():
    report = gpu_check("tiny", device="cpu", profile="smoke", resolution=32, warmup=1, steps=2, extractor_images=2,
                       variants=["ti", "nsync"], extractors=_smoke_extractors, allow_cpu=True)
    report = json.loads(json.dumps(report))  # JSON-able
    assert report["schema"] == SCHEMA
    assert {"arch", "profile", "hub_id", "weights", "device", "resolution", "environment", "training", "extractors",
            "seconds"} <= set(report)
    methods = report["training"]["methods"]
    assert set(methods) == {"ti", "nsync"}
    for row in methods.values():
        assert set(row) >= METHOD_KEYS and set(row["fp16"]) >= FP16_KEYS
        assert row["fp16"]["trainables_finite"] and row["median_step_s"] > 0
    assert methods["ti"]["batch_size"] == 4 and methods["nsync"]["batch_size"] == 2  # paper-code's batches
    assert methods["nsync"]["overflow_step"] == {"exercised": False,
                                                 "reason": "GradScaler is active only for fp16 on CUDA"}
    assert methods["ti"]["mixed_dtype_sampling"]["ok"]
    generation = report["training"]["generation"]
    assert generation["images_per_s"] > 0 and generation["num_inference_steps"] == 20
    assert set(report["extractors"]["extractors"]) == {"inception", "clip", "csd"}
    # sweep --dry-run --step-time reads it
    times = step_times_from_json(report, "gpu.json")
    assert times.step_seconds("nsync", 2) == pytest.approx(methods["nsync"]["median_step_s"])
