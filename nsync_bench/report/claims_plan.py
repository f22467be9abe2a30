"""What a claims file can conclude before any run: family sizes, whether the declared test can reach
alpha at the seeds planned, and the seeds each declared effect needs.

``nsync-bench sweep`` (and its dry run) prints the notes of :func:`reach_notes` before it starts
anything; ``nsync-bench claims`` prints the whole :func:`plan_claims`. A family's size is what the
report will adjust over: its claims' metrics times the styles each claim covers among the sweep's
(claims whose candidate or baseline the sweep does not run are left out).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nsync_bench.report.claims import Claim, ClaimsFile
from nsync_bench.stats.design import seeds_needed_for
from nsync_bench.stats.rule import reach_message, resolve_test, uses_exact

__all__ = ["EffectPlan", "FamilyPlan", "plan_claims", "reach_notes"]


@dataclass(frozen=True)
class EffectPlan:
    claim: str
    metric: str
    kind: str
    value: float
    reason: str
    seeds_needed: int | None  # None: a raw effect (needs the SD of the paired differences) or beyond reach


@dataclass
class FamilyPlan:
    family: str
    claims: list[str]
    tests: int
    test: str  # the deciding test at the planned seeds ("auto" resolved), or the declared one without seeds
    note: str | None = None  # "5 seeds cannot reach 0.05 with an exact test; ..."
    effects: list[EffectPlan] = field(default_factory=list)


def _styles_covered(claim: Claim, styles: list[str] | None) -> int:
    if styles is None:
        return len(claim.styles) if claim.styles is not None else 1
    return sum(claim.covers(style) for style in styles)


def plan_claims(claims: ClaimsFile, seeds: int | None = None, styles: list[str] | None = None,
                methods: list[str] | None = None) -> list[FamilyPlan]:
    """Per family: its size at these styles (a claim without a style filter counts one style when
    ``styles`` is None), whether the declared test can reach alpha at ``seeds``, and the seeds each
    declared d_z effect needs at level alpha / m with the declared test and power."""
    rule = claims.rule
    plans = []
    for family, members in claims.families().items():
        tested = [c for c in members if methods is None or {c.candidate, c.baseline} <= set(methods)]
        m = sum(len(c.metrics) * _styles_covered(c, styles) for c in tested)
        if m == 0:
            continue
        test = resolve_test(rule.test, seeds) if seeds else rule.test
        note = reach_message(seeds, rule.alpha, m) if seeds and uses_exact(rule.test, seeds) else None
        level = rule.alpha / m
        effects = [EffectPlan(c.id, metric, e.kind, e.value, e.reason,
                              seeds_needed_for(e.value, level, rule.test, rule.power) if e.kind == "d_z" else None)
                   for c in tested for metric, e in c.effects.items()]
        plans.append(FamilyPlan(family, [c.id for c in tested], m, test, note, effects))
    return plans


def reach_notes(claims: ClaimsFile, seeds: int, styles: list[str], methods: list[str]) -> list[str]:
    """One sentence per family whose declared test cannot reach alpha with ``seeds`` seeds."""
    return [f"family {p.family}: {p.note}" for p in plan_claims(claims, seeds, styles, methods) if p.note]
