"""``nsync-bench profiles``: list profiles and protocols, or show one resolved config."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from nsync_bench.cli.app import app, console
from nsync_bench.cli.options import ProtocolOption, SetOption


@app.command()
def profiles(
    name: Annotated[Optional[str], typer.Argument(help="Profile to show resolved (omit to list).")] = None,  # noqa: UP045
    method: Annotated[str, typer.Option(help="Method whose recipe to resolve.")] = "ti",
    style: Annotated[str, typer.Option(help="Style (sets the initializer token).")] = "toy-pastel",
    seed: Annotated[int, typer.Option()] = 0,
    protocol: ProtocolOption = None,
    overrides: SetOption = None,
) -> None:
    """List profiles and protocols, or print one profile's resolved config and run key."""
    from rich.table import Table

    from nsync_bench.config import recipes

    if name is None:
        table = Table("profile", "default protocol", "description", title="profiles")
        for prof in map(recipes.load_profile, recipes.profile_names()):
            table.add_row(prof.name, prof.default_protocol, prof.description)
        console.print(table)
        table = Table("protocol", "methods with own settings", "description", title="protocols (baselines/protocols)")
        for proto in map(recipes.load_protocol, recipes.protocol_names()):
            table.add_row(proto.name, ", ".join(sorted(proto.methods)) or "-", proto.description)
        console.print(table)
        return
    from nsync_bench.data.run_key import run_key

    config = recipes.resolve_config(style=style, method=method, seed=seed, profile=name, protocol=protocol,
                                    overrides=overrides)
    console.print_json(json.dumps(config.model_dump(mode="json")))
    console.print(f"run key: [bold]{run_key(config)}[/]")
