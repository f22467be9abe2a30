"""Profiles and protocols on disk, and the resolution of a run's config from them.

* profiles: ``nsync_bench/config/profiles/<name>.toml`` — ``description``, ``default_protocol`` and a
  ``[config]`` table (what and where: model, resolution, precision, sampling, step budget);
* protocols: ``baselines/protocols/<name>.toml`` — ``description``, ``[defaults]`` and
  ``[methods.<method>]`` tables (the recipe per method).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nsync_bench.compat import tomllib
from nsync_bench.config.methods import check_method
from nsync_bench.config.run_config import RunConfig, check_keys, deep_merge, overrides_to_tree, validate
from nsync_bench.errors import ConfigError, unknown_name
from nsync_bench.paths import shipped_dir

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    default_protocol: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    defaults: dict[str, Any]
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_method(self, method: str) -> dict[str, Any]:
        return deep_merge(self.defaults, self.methods.get(method, {}))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None


def _protocols_dir() -> Path:
    return shipped_dir("baselines") / "protocols"


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def protocol_names() -> list[str]:
    return sorted(p.stem for p in _protocols_dir().glob("*.toml"))


def load_profile(name: str) -> Profile:
    path = PROFILES_DIR / f"{name}.toml"
    if not path.is_file():
        raise unknown_name("profile", name, profile_names(), "List them with `nsync-bench profiles`.")
    data = _read_toml(path)
    config = data.get("config", {})
    check_keys(config, f"profile {name!r} ({path})")
    return Profile(name, data.get("description", ""), data.get("default_protocol", "matched"), config)


def load_protocol(name: str) -> Protocol:
    path = _protocols_dir() / f"{name}.toml"
    if not path.is_file():
        raise unknown_name("protocol", name, protocol_names(), f"Protocols are files in {path.parent}.")
    data = _read_toml(path)
    defaults = data.get("defaults", {})
    methods = data.get("methods", {})
    check_keys(defaults, f"protocol {name!r} [defaults]")
    for method, table in methods.items():
        check_method(method)
        check_keys(table, f"protocol {name!r} [methods.{method}]")
    return Protocol(name, data.get("description", ""), defaults, methods)


def resolve_config(
    *,
    style: str,
    method: str,
    seed: int = 0,
    profile: str = "smoke",
    protocol: str | None = None,
    overrides: list[str] | None = None,
) -> RunConfig:
    """Resolve a run's config: defaults < protocol < profile < ``--set`` (see nsync_bench.config.run_config)."""
    from nsync_bench.config.styles import get_style

    check_method(method)
    style_info = get_style(style)
    prof = load_profile(profile)
    proto = load_protocol(protocol or prof.default_protocol)
    tree: dict[str, Any] = {
        "run": {"style": style, "method": method, "seed": seed, "profile": prof.name, "protocol": proto.name}
    }
    tree = deep_merge(tree, proto.for_method(method))
    tree = deep_merge(tree, prof.config)
    tree = deep_merge(tree, overrides_to_tree(list(overrides or [])))
    config = validate(tree, f"profile {prof.name!r}, protocol {proto.name!r}, --set")
    if config.ti.initializer_token is None:
        config.ti.initializer_token = style_info.initializer_token
    return config
