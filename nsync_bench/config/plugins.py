"""Plugins: implementations that a package high in the layers registers for names a lower one resolves.

The toy world (``world/``) sits near the top of the layers (docs/architecture.md) because it trains
and reports experiments, yet its base model, its probe extractors and its target styles are resolved
by name in ``models/``, ``metrics/`` and ``data/``. Instead of those packages naming ``world/``, a
package declares what it provides in its own ``plugins.toml`` (like a Python entry point, but in the
tree, so no reinstall is needed)::

    [model_sources]
    toy-world = "nsync_bench.world.model:load_world_components"

and the lower package asks for ``load_plugin("model_sources", "toy-world")``. Targets are imported
only when used, so listing names stays free of torch.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from typing import Any

from nsync_bench.compat import tomllib
from nsync_bench.errors import ConfigError, unknown_name

PLUGIN_FILE = "plugins.toml"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


@cache
def plugin_table() -> dict[str, dict[str, str]]:
    """group -> name -> ``"module:attribute"``, from every ``nsync_bench/<package>/plugins.toml``."""
    groups: dict[str, dict[str, str]] = {}
    for path in sorted(_PACKAGE_DIR.glob(f"*/{PLUGIN_FILE}")):
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        for group, rows in data.items():
            for name, target in rows.items():
                if name in groups.setdefault(group, {}):
                    raise ConfigError(f"{path}: plugin {group}.{name} is registered twice (also "
                                      f"{groups[group][name]!r}); rename one.")
                groups[group][name] = str(target)
    return groups


def plugin_names(group: str) -> list[str]:
    return sorted(plugin_table().get(group, {}))


def load_plugin(group: str, name: str, kind: str) -> Any:
    """The object registered as ``group.name``; an unknown name is a teaching error naming ``kind``."""
    rows = plugin_table().get(group, {})
    if name not in rows:
        raise unknown_name(kind, name, rows)
    module, _, attribute = rows[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as err:  # a row that names a missing module or attribute
        raise ConfigError(f"plugin {group}.{name} = {rows[name]!r} (a plugins.toml row under nsync_bench/) cannot "
                          f"be loaded: {err}. Fix the row, or reinstall nsync-bench if you did not edit it.") from err
