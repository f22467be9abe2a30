"""The README's main job (`nox -s smoke`) and the pre-registered toy NSYNC experiment are consistent
sweep files: their claims files load, every claim's comparison is a pair the sweep runs, and the
declared rule's exact test can reach alpha at the sweep's seeds (otherwise the job could never end with
a supported claim, whatever the data)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nsync_bench.config.recipes import resolve_config
from nsync_bench.report.claims import load_claims
from nsync_bench.report.claims_plan import plan_claims
from nsync_bench.sweep.matrix import load_sweep_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["toy-quick", "toy-nsync"])
def test_the_sweep_can_decide_its_claims(name):
    spec = load_sweep_file(name)
    claims = load_claims(spec.claims)
    planned = plan_claims(claims, len(spec.seeds), spec.styles, spec.methods)
    assert planned and all(not p.note for p in planned), [p.note for p in planned]
    for claim in claims.claims:
        assert {claim.candidate, claim.baseline} <= set(spec.methods)
        assert set(claim.styles) <= set(spec.styles)
    for style in spec.styles:  # every run of the matrix resolves (budget overrides included)
        for method in spec.methods:
            resolve_config(style=style, method=method, seed=spec.seeds[0], profile=spec.profile,
                           protocol=spec.protocol, overrides=spec.overrides)


def test_the_main_job_runs_the_toy_quick_sweep_and_checks_its_claim():
    noxfile = (ROOT / "noxfile.py").read_text()
    smoke = noxfile[noxfile.index("def smoke"):noxfile.index("def pipeline")]
    assert '"--file", "toy-quick"' in smoke and '"--claims", "toy-quick"' in smoke and "_require_supported" in smoke
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^python3 -m pip install nox && nox -s smoke$", readme, re.M)


def test_the_main_job_budget_is_declared_not_hidden():
    spec = load_sweep_file("toy-quick")
    config = resolve_config(style="world-dusk", method="ti", seed=0, profile=spec.profile, overrides=spec.overrides)
    assert (config.train.max_steps, config.eval.max_prompts) == (400, 32)
    assert set(spec.seeds).isdisjoint(range(200, 206))  # the seeds the budget was chosen on decide nothing
