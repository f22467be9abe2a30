"""Rich output of ``nsync-bench run ... --dry-run``: every need of the run, its status, and the commands."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from nsync_bench.pipeline.readiness import Need, RunPlan

_STYLE = {"present": "green", "download": "cyan", "automatic": "cyan", "missing": "red", "blocked": "red"}


def _size(need: Need) -> str:
    if not need.size:
        return "?" if need.status in ("download", "missing") and need.what != "captions" else ""
    return f"{'≈' if need.approx else ''}{need.size / 1e9:.2f} GB"


def print_run_plan(console: Console, plan: RunPlan, run_key: str | None) -> None:
    table = Table("need", "status", "size", "revision", "sha256", "what / command", show_lines=True,
                  title=f"run {plan.label} (dry run: nothing is downloaded, trained or logged)")
    for column in table.columns:
        column.overflow = "fold"
    for need in plan.needs:
        status = f"[{_STYLE.get(need.status, 'white')}]{need.status}[/]"
        text = need.detail
        if need.command:  # long ones in full below the table
            command = need.command if len(need.command) <= 90 else need.command[:87] + "..."
            text += f"\n[bold]$ {command}[/]"
        if need.note:
            text += f"\n{need.note}"
        table.add_row(need.what, status, _size(need), need.revision or "", need.sha256 or "", text)
    console.print(table, soft_wrap=True)
    if run_key:
        console.print(f"run key: {run_key}")
    downloads = [n for n in plan.needs if n.status in ("download", "missing") and n.size]
    if downloads:
        total = sum(n.size or 0 for n in downloads)
        console.print(f"downloads: {len(downloads)} with a known size, {total / 1e9:.2f} GB in all")
    mode = "offline (HF_HUB_OFFLINE=1): the run downloads nothing itself" if plan.offline else \
        "online: the run fetches what is marked 'download' itself"
    console.print(mode)
    if plan.ready:
        console.print("[bold green]ready[/]: the same command without --dry-run starts the run.")
        return
    console.print(f"[bold red]not ready[/]: {len(plan.blocking())} need(s) first, in this order:")
    for command in plan.commands():
        console.print(f"  $ {command}", soft_wrap=True)
    for need in plan.blocking():
        if not need.command:
            console.print(f"  {need.what}: {need.note}", soft_wrap=True)
