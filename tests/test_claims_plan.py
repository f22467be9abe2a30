"""Before any run: family sizes, reachability and seeds needed from a claims file (report.claims_plan,
`nsync-bench claims`)."""

from __future__ import annotations

import dataclasses

from typer.testing import CliRunner

from nsync_bench.report.claims import load_claims
from nsync_bench.report.claims_plan import plan_claims, reach_notes
from nsync_bench.stats.design import seeds_needed_for
from nsync_bench.stats.rule import seeds_to_reach

PAPER_STYLES = ["monet", "vangogh", "ghibli", "illustrators"]


def test_family_sizes_follow_styles_and_methods():
    paper = load_claims()
    plans = {p.family: p for p in plan_claims(paper, 5, PAPER_STYLES)}
    assert set(plans) == {"nsync-beats-ldm", "nsync-beats-ti", "nsync-beats-lora", "nsync-lora-beats-lora"}
    assert {p.tests for p in plans.values()} == {16} and {p.test for p in plans.values()} == {"both"}
    assert plans["nsync-beats-ti"].note.endswith(f"need >= 6, or >= {seeds_to_reach(0.05, 16)} with Holm over 16")
    assert seeds_to_reach(0.05, 16) == 10
    # A sweep without ldm runs does not test the claim against it.
    assert "nsync-beats-ldm" not in {p.family for p in plan_claims(paper, 5, PAPER_STYLES, ["nsync", "ti", "lora"])}
    # Enough seeds: nothing to say. The file declares `both`; without a declared test (auto) the t-test
    # decides from 20 seeds on.
    assert paper.rule.test == "both" and paper.rule.declared
    assert reach_notes(paper, 10, PAPER_STYLES, ["nsync", "ti"]) == []
    assert plan_claims(paper, 25, PAPER_STYLES)[0].test == "both"
    auto = dataclasses.replace(paper, rule=dataclasses.replace(paper.rule, test="auto", declared=False))
    assert plan_claims(auto, 25, PAPER_STYLES)[0].test == "t" and plan_claims(auto, 19, PAPER_STYLES)[0].test == "both"


def test_toy_control_notes_and_effects():
    toy = load_claims("toy-control")
    notes = reach_notes(toy, 5, ["world-dusk"], ["ti", "untrained", "floor"])
    assert notes[0] == ("family ti-beats-untrained: 5 seeds cannot reach 0.05 with an exact test (smallest "
                        "two-sided p 2/2^5 = 0.0625); need >= 6, or >= 8 with Holm over 4")
    assert len(notes) == 3 and reach_notes(toy, 8, ["world-dusk"], ["ti", "untrained", "floor"]) == []
    plan = plan_claims(toy, 5, ["world-dusk"])[0]
    assert {e.kind for e in plan.effects} == {"raw"} and {e.seeds_needed for e in plan.effects} == {None}


def test_declared_d_z_effects_get_their_seeds_needed():
    paper = load_claims()
    plan = plan_claims(paper, None, PAPER_STYLES)[0]
    assert plan.effects[0].seeds_needed == seeds_needed_for(1.0, 0.05 / 16, "both")


def test_cli_claims_prints_rule_families_and_notes():
    from nsync_bench.cli.main import app

    result = CliRunner().invoke(app, ["claims", "toy-control", "--seeds", "5", "--styles", "world-dusk"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "rule: test = both: both the paired t-test and the exact paired sign-flip permutation test" in text
    assert "family ti-beats-untrained: 5 seeds cannot reach 0.05 with an exact test" in text
    assert "314 (raw)" in text
    bad = CliRunner().invoke(app, ["claims", "nope"])
    assert bad.exit_code == 2 and "no claims file 'nope'" in " ".join(bad.output.split())


def test_an_absurd_seed_count_is_planned_not_an_overflow():
    """``2.0 ** n`` overflows at n = 1024: `claims --seeds 100000` once ended in an OverflowError."""
    from nsync_bench.cli.main import app
    from nsync_bench.stats.rule import exact_min_p

    assert exact_min_p(1024) == 2.0 ** -1023 and exact_min_p(100_000) == 0.0
    result = CliRunner().invoke(app, ["claims", "toy-quick", "--seeds", "100000"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "unexpected" not in result.output, result.output
