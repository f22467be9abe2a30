"""Claims files: what an experiment claims, and how the report is to test it (schema 1).

A claims file (``baselines/claims.toml``, ``baselines/claims/<name>.toml``) declares, before the
runs that test it: the verdict rule (primary test, alpha, target power), the claims (candidate,
baseline, metrics, optional style filter), how the claims group into Holm families, per metric the
smallest effect of interest (a raw difference or a d_z, with a reason) and the scale (``none`` or
``log``), extra endpoints beyond the built-in metrics, and the plan it answers. docs/statistics.md
("Claims files") is the reference; every rule below raises a :class:`ConfigError` naming the key
and the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nsync_bench.compat import tomllib
from nsync_bench.errors import ConfigError
from nsync_bench.paths import shipped_dir
from nsync_bench.stats.rule import AUTO, TESTS

__all__ = ["EXPLORATORY", "TRANSFORMS", "Claim", "ClaimsFile", "Effect", "Endpoint", "Rule", "claims_names",
           "claims_path", "load_claims", "parse_claims"]

SCHEMA = 1
EXPLORATORY = "exploratory"  # the family of comparisons no claim covers
TRANSFORMS = ("none", "log")
DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8
DECLARED_IMPLEMENTATION = "declared endpoint"
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_ENDPOINT = re.compile(r"^[a-z][a-z0-9_]*$")
_TOP = {"schema", "description", "plan", "arms", "rule", "endpoints", "claims"}
_CLAIM = {"id", "text", "candidate", "baseline", "metrics", "styles", "family", "effects", "transforms"}


@dataclass(frozen=True)
class Rule:
    test: str = AUTO  # "t" | "permutation" | "both" | "auto" (not declared)
    alpha: float = DEFAULT_ALPHA
    power: float = DEFAULT_POWER
    declared: bool = False  # whether the file declared the test


@dataclass(frozen=True)
class Endpoint:
    """A metric beyond the built-ins, logged by runs as the MLflow metric ``metrics/<name>``."""

    name: str
    direction: Literal["lower", "higher"]
    description: str
    label: str


@dataclass(frozen=True)
class Effect:
    """The smallest effect of interest of one metric: ``kind`` "raw" (metric units on the analysis scale,
    candidate better = positive) or "d_z" (difference / SD of the paired differences)."""

    kind: Literal["raw", "d_z"]
    value: float
    reason: str


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    candidate: str
    baseline: str
    metrics: tuple[str, ...]
    effects: Mapping[str, Effect]
    transforms: Mapping[str, str] = field(default_factory=dict)
    styles: tuple[str, ...] | None = None  # None: every style the report has
    family: str = ""

    def covers(self, style: str) -> bool:
        return self.styles is None or style in self.styles

    def transform(self, metric: str) -> str:
        return self.transforms.get(metric, "none")


@dataclass
class ClaimsFile:
    path: Path | None
    description: str
    claims: list[Claim]
    rule: Rule = field(default_factory=Rule)
    plan: str | None = None
    arms: tuple[str, ...] = ()
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    def families(self) -> dict[str, list[Claim]]:
        """Family name -> its claims, in file order."""
        out: dict[str, list[Claim]] = {}
        for claim in self.claims:
            out.setdefault(claim.family, []).append(claim)
        return out

    def claim_for(self, candidate: str, baseline: str, metric: str, style: str) -> Claim | None:
        """The claim a comparison belongs to (at most one: the loader refuses overlaps)."""
        for claim in self.claims:
            if (claim.candidate, claim.baseline) == (candidate, baseline) and metric in claim.metrics \
                    and claim.covers(style):
                return claim
        return None

    def directions(self) -> dict[str, str]:
        """Every metric a claim may name, with its direction: the built-ins, then the declared endpoints."""
        return {**_builtin_directions(), **{name: e.direction for name, e in self.endpoints.items()}}


def _builtin_directions() -> dict[str, str]:
    from nsync_bench.metrics.registry import directions

    return dict(directions())


def claims_names() -> list[str]:
    folder = shipped_dir("baselines") / "claims"
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def claims_path(name_or_path: str | Path | None = None) -> Path:
    """``baselines/claims.toml`` (None), ``baselines/claims/<name>.toml`` (a name) or a path to a file."""
    if name_or_path is None:
        return shipped_dir("baselines") / "claims.toml"
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = shipped_dir("baselines") / "claims" / f"{name_or_path}.toml"
    if named.is_file():
        return named
    names = ", ".join(claims_names()) or "none"
    raise ConfigError(f"no claims file {str(name_or_path)!r}: not a file, and not a name in baselines/claims/ "
                      f"(names there: {names}). Pass a path to a TOML file, or leave it out for baselines/claims.toml.")


def load_claims(name_or_path: str | Path | None = None) -> ClaimsFile:
    """Read and validate a claims file (see the module docstring); a ConfigError says what is wrong."""
    path = claims_path(name_or_path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"claims file {path} is not valid TOML: {err}.") from None
    return parse_claims(data, path)


def _fail(source: object, where: str, message: str) -> ConfigError:
    return ConfigError(f"claims file {source}: {where}: {message}")


def _text(value: Any, source: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(source, where, f"must be a non-empty string; got {value!r}.")
    return value.strip()


def _names(value: Any, source: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise _fail(source, where, f"must be a non-empty list of names, e.g. [\"csd\", \"fid\"]; got {value!r}.")
    if len(set(value)) != len(value):
        raise _fail(source, where, f"lists a name twice: {value!r}.")
    return tuple(value)


def _unknown_keys(table: Mapping[str, Any], allowed: set[str], source: object, where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _fail(source, where, f"unknown key(s) {unknown}; allowed: {', '.join(sorted(allowed))}.")


def _rule(data: Any, source: object) -> Rule:
    if data is None:
        return Rule()
    if not isinstance(data, dict):
        raise _fail(source, "[rule]", "must be a table with test, alpha and power.")
    _unknown_keys(data, {"test", "alpha", "power"}, source, "[rule]")
    test = data.get("test", AUTO)
    if test not in TESTS:
        raise _fail(source, "rule.test", f"{test!r} is not a test; use one of {', '.join(TESTS)}, or leave it out "
                    "for the default (both below 20 seeds, t from 20).")
    alpha = data.get("alpha", DEFAULT_ALPHA)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        raise _fail(source, "rule.alpha", f"must lie strictly between 0 and 1 (e.g. 0.05); got {alpha!r}.")
    power = data.get("power", DEFAULT_POWER)
    if isinstance(power, bool) or not isinstance(power, (int, float)) or not alpha < power < 1.0:
        raise _fail(source, "rule.power", f"must lie strictly between alpha ({alpha:g}) and 1 (e.g. 0.8); "
                    f"got {power!r}.")
    return Rule(str(test), float(alpha), float(power), "test" in data)


def _endpoints(data: Any, source: object, builtin: set[str]) -> dict[str, Endpoint]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _fail(source, "[endpoints]", "must be tables [endpoints.<name>] with direction and description.")
    out = {}
    for name, table in data.items():
        where = f"endpoints.{name}"
        if not _ENDPOINT.match(name):
            raise _fail(source, where, "an endpoint name is lower-case letters, digits and _ (it is read from the "
                        "MLflow metric metrics/<name>), e.g. leakage.")
        if name in builtin:
            raise _fail(source, where, f"{name!r} is a built-in metric; declare only new endpoints.")
        if not isinstance(table, dict):
            raise _fail(source, where, "must be a table with direction and description.")
        _unknown_keys(table, {"direction", "description", "label"}, source, where)
        direction = table.get("direction")
        if direction not in ("lower", "higher"):
            raise _fail(source, f"{where}.direction", f"must be 'lower' or 'higher' (which is better); got "
                        f"{direction!r}.")
        description = _text(table.get("description"), source, f"{where}.description")
        label = _text(table.get("label", name.upper()), source, f"{where}.label")
        out[name] = Endpoint(name, direction, description, label)
    return out


def _effects(data: Any, metrics: tuple[str, ...], source: object, where: str) -> dict[str, Effect]:
    if not isinstance(data, dict):
        raise _fail(source, where, "missing: declare the smallest effect of interest of every metric, e.g. "
                    "[claims.effects] csd = { raw = 0.05, reason = \"...\" } (or d_z = 1.0).")
    _unknown_keys(data, set(metrics), source, where)
    out = {}
    for metric in metrics:
        entry = data.get(metric)
        at = f"{where}.{metric}"
        if not isinstance(entry, dict):
            raise _fail(source, at, "missing: every metric of a claim needs { raw = X, reason = \"...\" } or "
                        "{ d_z = X, reason = \"...\" }.")
        _unknown_keys(entry, {"raw", "d_z", "reason"}, source, at)
        kinds = [k for k in ("raw", "d_z") if k in entry]
        if len(kinds) != 1:
            raise _fail(source, at, "give exactly one of raw (metric units) or d_z (standardised).")
        value = entry[kinds[0]]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise _fail(source, f"{at}.{kinds[0]}", f"must be a positive finite number (the magnitude of the "
                        f"smallest improvement that matters); got {value!r}.")
        reason = _text(entry.get("reason"), source, f"{at}.reason")
        out[metric] = Effect(kinds[0], float(value), reason)  # type: ignore[arg-type]
    return out


def _transforms(data: Any, metrics: tuple[str, ...], source: object, where: str) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _fail(source, where, "must be a table metric = \"log\" | \"none\".")
    _unknown_keys(data, set(metrics), source, where)
    for metric, value in data.items():
        if value not in TRANSFORMS:
            raise _fail(source, f"{where}.{metric}", f"{value!r} is not a transform; use one of "
                        f"{', '.join(TRANSFORMS)}.")
    return {m: str(v) for m, v in data.items() if v != "none"}


def _claim(data: Any, index: int, source: object, known: dict[str, str], parties: set[str]) -> Claim:
    where = f"claims[{index}]"
    if not isinstance(data, dict):
        raise _fail(source, where, "each [[claims]] entry is a table.")
    _unknown_keys(data, _CLAIM, source, where)
    claim_id = _text(data.get("id"), source, f"{where}.id")
    if not _ID.match(claim_id):
        raise _fail(source, f"{where}.id", f"{claim_id!r}: use lower-case letters, digits, '.', '_' and '-'.")
    where = f"claim {claim_id!r}"
    text = _text(data.get("text"), source, f"{where}.text")
    sides = []
    for key in ("candidate", "baseline"):
        name = _text(data.get(key), source, f"{where}.{key}")
        if name not in parties:
            raise _fail(source, f"{where}.{key}", f"unknown method {name!r}; valid: {', '.join(sorted(parties))} "
                        "(declare other arms in the top-level list arms = [...]).")
        sides.append(name)
    if sides[0] == sides[1]:
        raise _fail(source, where, f"candidate and baseline are both {sides[0]!r}; a claim compares two arms.")
    metrics = _names(data.get("metrics"), source, f"{where}.metrics")
    for metric in metrics:
        if metric not in known:
            raise _fail(source, f"{where}.metrics", f"unknown metric {metric!r}; valid: {', '.join(known)} "
                        "(declare a new one under [endpoints.<name>]).")
    styles = None
    if "styles" in data:
        from nsync_bench.config.styles import style_names

        styles = _names(data["styles"], source, f"{where}.styles")
        allowed = style_names()
        for style in styles:
            if style not in allowed:
                raise _fail(source, f"{where}.styles", f"unknown style {style!r}; valid: {', '.join(allowed)}.")
    family = _text(data.get("family", claim_id), source, f"{where}.family")
    if family == EXPLORATORY:
        raise _fail(source, f"{where}.family", f"{EXPLORATORY!r} is reserved for comparisons no claim covers.")
    effects = _effects(data.get("effects"), metrics, source, f"{where}.effects")
    transforms = _transforms(data.get("transforms"), metrics, source, f"{where}.transforms")
    return Claim(claim_id, text, sides[0], sides[1], metrics, effects, transforms, styles, family)


def _check_overlaps(claims: list[Claim], source: object) -> None:
    """A comparison (candidate, baseline, metric, style) belongs to one claim, hence to one family."""
    for i, a in enumerate(claims):
        for b in claims[i + 1:]:
            if (a.candidate, a.baseline) != (b.candidate, b.baseline):
                continue
            shared = sorted(set(a.metrics) & set(b.metrics))
            styles = None if a.styles is None or b.styles is None else sorted(set(a.styles) & set(b.styles))
            if shared and (styles is None or styles):
                where = "every style" if styles is None else ", ".join(styles)
                raise _fail(source, f"claims {a.id!r} and {b.id!r}", f"both test {a.candidate} vs {a.baseline} on "
                            f"{', '.join(shared)} ({where}); a comparison belongs to one claim. Split the styles "
                            "or the metrics between them.")


def _plan(value: Any, source: object) -> str | None:
    if value is None:
        return None
    plan = _text(value, source, "plan")
    root = shipped_dir("baselines").parent
    if Path(plan).is_absolute() or not (root / plan).is_file():
        raise _fail(source, "plan", f"{plan!r} is not a file under the repository root ({root}); commit the plan "
                    "(e.g. baselines/experiments/<date>-<name>.md) first and give its relative path.")
    return plan


def parse_claims(data: Mapping[str, Any], source: object = "<claims>",
                 methods: Iterable[str] | None = None) -> ClaimsFile:
    """Validate a parsed claims file (a TOML document as a dict); ``source`` names it in errors."""
    _unknown_keys(data, _TOP, source, "top level")
    schema = data.get("schema", SCHEMA)
    if schema != SCHEMA:
        raise _fail(source, "schema", f"this nsync-bench reads claims schema {SCHEMA}; got {schema!r}.")
    description = _text(data.get("description"), source, "description")
    arms = _names(data["arms"], source, "arms") if data.get("arms") else ()
    if methods is None:
        from nsync_bench.config.methods import METHOD_INFO

        methods = METHOD_INFO
    builtin = _builtin_directions()
    endpoints = _endpoints(data.get("endpoints"), source, set(builtin))
    known = {**builtin, **{name: e.direction for name, e in endpoints.items()}}
    raw_claims = data.get("claims")
    if not isinstance(raw_claims, list) or not raw_claims:
        raise _fail(source, "claims", "declare at least one [[claims]] table.")
    claims = [_claim(c, i, source, known, {*methods, *arms}) for i, c in enumerate(raw_claims)]
    ids = [c.id for c in claims]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise _fail(source, "claims", f"duplicate id(s) {duplicated}; every claim needs its own id.")
    _check_overlaps(claims, source)
    return ClaimsFile(Path(source) if isinstance(source, Path) else None, description, claims,
                      _rule(data.get("rule"), source), _plan(data.get("plan"), source), arms, endpoints)
