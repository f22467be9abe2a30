"""``nsync-bench claims``: read a claims file and say what it can conclude, before any run."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nsync_bench.cli.app import app, console

# ruff: noqa: UP045 - typer needs Optional


def _csv(text: str | None) -> list[str] | None:
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    return items or None


@app.command("claims")
def claims_command(
    file: Annotated[Optional[str], typer.Argument(
        help="A claims file: a name in baselines/claims/ or a path (default baselines/claims.toml).")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="Seeds you plan to run (for the reachability check).")] = None,
    styles: Annotated[Optional[str], typer.Option(
        help="Comma list of the styles you plan to run (family sizes); default: each claim's filter, else 1.")] = None,
    methods: Annotated[Optional[str], typer.Option(
        help="Comma list of the methods you plan to run; claims needing others are left out.")] = None,
) -> None:
    """Validate a claims file; print its rule, families, declared effects and the seeds they need."""
    from rich.table import Table

    from nsync_bench.report.claims import load_claims
    from nsync_bench.report.claims_plan import plan_claims
    from nsync_bench.stats.rule import rule_text

    if seeds is not None and seeds < 1:
        raise typer.BadParameter(f"--seeds must be a positive count; got {seeds}.")
    claims = load_claims(file)
    console.print(f"[bold]{claims.path}[/]: {claims.description}", soft_wrap=True, highlight=False)
    answers = claims.plan or 'none named (declare plan = "baselines/experiments/<name>.md")'
    console.print(f"plan: {answers}", soft_wrap=True, highlight=False)
    console.print(f"rule: {rule_text(claims.rule.test, claims.rule.alpha, claims.rule.declared)}", soft_wrap=True,
                  highlight=False)
    style_list = _csv(styles)
    if style_list is None and any(c.styles is None for c in claims.claims):
        console.print("family sizes count one style for claims without a style filter; pass --styles for yours.")
    table = Table("family", "claims", "tests", "test", f"reach at {seeds}?" if seeds else "reach",
                  title="families (Holm within each)", title_justify="left")
    effects = Table("claim", "metric", "smallest effect", "seeds needed",
                    title=f"declared effects: seeds needed at alpha/m, power {claims.rule.power:g}",
                    title_justify="left")
    notes = []
    for plan in plan_claims(claims, seeds, style_list, _csv(methods)):
        reach = "—" if not seeds else ("yes" if plan.note is None else "no")
        table.add_row(plan.family, ", ".join(plan.claims), str(plan.tests), plan.test, reach)
        notes += [f"family {plan.family}: {plan.note}."] if plan.note else []
        for effect in plan.effects:
            needed = str(effect.seeds_needed) if effect.seeds_needed else (
                "needs the SD of the paired differences" if effect.kind == "raw" else "more than 100,000")
            value = f"d_z {effect.value:g}" if effect.kind == "d_z" else f"{effect.value:g} (raw)"
            effects.add_row(effect.claim, effect.metric, value, needed)
    console.print(table)
    for note in notes:
        console.print(f"[yellow]{note}[/]", soft_wrap=True, highlight=False)
    console.print(effects)
