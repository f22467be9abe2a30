"""The GPU check fits its target: its own time estimate, a budget it keeps, a wheelhouse of only what it imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nsync_bench.checks.gpu import BUDGET_S, VARIANTS, estimate_seconds, gpu_check
from nsync_bench.perf import wheelhouse


def test_the_default_check_estimates_itself_within_five_minutes_on_an_h100():
    cold = estimate_seconds(list(VARIANTS), warmup=2, steps=5, generation_images=8, snapshot_cached=False)
    warm = estimate_seconds(list(VARIANTS), warmup=2, steps=5, generation_images=8, snapshot_cached=True)
    assert BUDGET_S == 300 and warm < cold <= BUDGET_S


def test_a_spent_budget_skips_what_is_left_and_still_reports(data_root):
    report = gpu_check("tiny", device="cpu", profile="smoke", resolution=32, warmup=0, steps=1, extractor_images=2,
                       variants=["ti", "nsync"], allow_cpu=True, budget_s=0.0)
    report = json.loads(json.dumps(report))
    assert report["budget_s"] == 0.0 and report["estimate_s"] > 0
    assert all(row == {"skipped": "time budget of 0 s spent"} for row in report["training"]["methods"].values())
    assert report["extractors"]["skipped"].startswith("time budget")


# ----------------------------------------------------------------------------------------- wheelhouse
FAKE = {  # name: requirements
    "torch": ["typing-extensions", "nvidia-cublas-cu12"], "typing-extensions": [], "nvidia-cublas-cu12": [],
    "transformers": ["numpy", "safetensors", "huggingface-hub"], "numpy": [], "safetensors": [], "huggingface-hub": [],
    "typer": ["click", "pydantic"], "click": [], "pydantic": ["pydantic-core", "typing-extensions"],
    "pydantic-core": [],
    "diffusers": ["numpy", "huggingface-hub", "importlib-metadata"], "importlib-metadata": ["zipp"], "zipp": [],
    "clean-fid": ["scipy", "requests", "torch"], "scipy": ["numpy"], "requests": [],
}


def test_the_plan_carries_the_checks_closure_minus_the_targets_and_never_torch():
    planned = wheelhouse.plan(roots=["diffusers", "transformers", "pydantic", "clean-fid", "typer"],
                              present=["torch", "transformers", "typer", "scipy", "requests"], absent=["pydantic"],
                              requires=FAKE.__getitem__, installed=FAKE.__contains__)
    # pydantic is carried although this machine's typer requires it: the target's typer does not
    assert planned == ["clean-fid", "diffusers", "importlib-metadata", "pydantic", "pydantic-core", "zipp"]


def test_the_real_plan_holds_what_the_target_lacks_and_nothing_it_has():
    planned = set(wheelhouse.plan())
    assert {"diffusers", "pydantic", "open-clip-torch", "clean-fid", "platformdirs"} <= planned
    assert not planned & {"torch", "torchvision", "numpy", "scipy", "pillow", "transformers", "mlflow", "submitit",
                          "pandas", "matplotlib"}


@pytest.mark.slow  # runs the whole check (tiny profile, the reference extractors at random weights) in a subprocess
def test_everything_the_check_imports_is_on_the_target_or_in_the_wheelhouse(tmp_path):
    code = (
        "import sys, json\n"
        "from importlib import metadata\n"
        "from nsync_bench.checks.gpu import gpu_check\n"
        f"report = gpu_check('tiny', device='cpu', profile='smoke', resolution=32, warmup=0, steps=1, "
        f"extractor_images=2, variants=['ti', 'nsync-lora'], allow_cpu=True, cache_root='{tmp_path}')\n"
        "owners = metadata.packages_distributions()\n"
        "dists = set()\n"
        "for name in list(sys.modules):\n"
        "    top = name.split('.')[0]\n"
        "    if getattr(sys.modules[top], '__file__', None) is not None:\n"
        "        dists.update(owners.get(top, []))\n"
        "    elif '.' in name:  # a namespace package ('google'): the distribution holding the submodule\n"
        "        part = '/'.join(name.split('.')[:2])\n"
        "        dists.update(d for d in owners.get(top, [])\n"
        "                     if any(str(f).startswith(part + '/') for f in metadata.files(d) or []))\n"
        "print(json.dumps({'dists': sorted(dists), 'extractors': sorted(report['extractors']['extractors'])}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["extractors"] == ["clip", "csd", "inception"]  # the real extractors' code ran
    imported = {wheelhouse.normalize(d) for d in result["dists"]}
    there = wheelhouse.closure(wheelhouse.TARGET_PRESENT) - set(wheelhouse.TARGET_ABSENT)
    carried = set(wheelhouse.plan()) | {"nsync-bench"}
    assert "clean-fid" in imported and "clean-fid" in carried
    assert not {"mlflow", "submitit"} & imported
    assert imported <= there | carried, sorted(imported - there - carried)
