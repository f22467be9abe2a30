"""Extra endpoints: numbers a plug-in reads off a run's generated images, beside the registered metrics.

A metric (``metrics.registry``) compares the generated set with the real one through features. An
*endpoint* is what else a plug-in can say about the generated images given what each image's prompt
asked for: the toy world's probe reads every image's attribute values, so it can count the images
that carry the target's style, or a nuisance the prompt did not ask for (``nsync_bench.world.endpoints``).

Lower layers never name a plug-in: a plug-in registers a provider here when it is loaded, and the
evaluation stage asks every registered provider whether it applies to the run's style. Each
provider declares its endpoints (name, direction, meaning) up front, so a value it computes but did
not declare, or a name that would shadow a metric, is an error rather than a silent column.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

Direction = Literal["lower", "higher"]


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    direction: Direction
    description: str


@dataclass(frozen=True)
class GeneratedSet:
    """A run's generated images and, for each, the caption its prompt carried."""

    style: str
    images: tuple[Path, ...]
    captions: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.images) != len(self.captions):
            raise ValueError(f"{len(self.images)} images but {len(self.captions)} captions: one caption per image")


@dataclass(frozen=True)
class EndpointResult:
    name: str
    value: float
    direction: Direction
    implementation: str  # the provider's id (names its instrument, e.g. the probe's hash)
    n_images: int  # images the value is computed from (a share's denominator)


class EndpointProvider(Protocol):
    name: str
    specs: tuple[EndpointSpec, ...]

    def applies(self, style: str) -> bool:
        """Whether this provider has anything to say about ``style``."""
        ...

    def compute(self, generated: GeneratedSet) -> list[EndpointResult]:
        """The endpoints that apply to this set (a subset of ``specs``)."""
        ...


_PROVIDERS: dict[str, EndpointProvider] = {}


def register(provider: EndpointProvider) -> None:
    """Add ``provider`` (idempotent for the same object; another one under a taken name is an error)."""
    from nsync_bench.metrics.registry import specs

    existing = _PROVIDERS.get(provider.name)
    if existing is not None and existing is not provider:
        raise ValueError(f"an endpoint provider named {provider.name!r} is already registered ({existing!r})")
    clashes = [s.name for s in provider.specs if s.name in specs()]
    if clashes:
        raise ValueError(f"endpoint provider {provider.name!r} declares {clashes}, which are metric names: "
                         "rename the endpoints")
    _PROVIDERS[provider.name] = provider


def unregister(name: str) -> None:
    """Remove a provider (tests that register a temporary one)."""
    _PROVIDERS.pop(name, None)


def providers() -> list[EndpointProvider]:
    return list(_PROVIDERS.values())


def declared() -> dict[str, EndpointSpec]:
    """Every registered endpoint by name."""
    return {spec.name: spec for provider in _PROVIDERS.values() for spec in provider.specs}


def compute_endpoints(generated: GeneratedSet, only: Sequence[EndpointProvider] | None = None) -> list[EndpointResult]:
    """The endpoints of every (or each of ``only``) provider that applies to ``generated.style``."""
    results: list[EndpointResult] = []
    for provider in _PROVIDERS.values() if only is None else only:
        if not provider.applies(generated.style):
            continue
        specs = {spec.name: spec for spec in provider.specs}
        for result in provider.compute(generated):
            spec = specs.get(result.name)
            if spec is None:
                raise ValueError(f"endpoint provider {provider.name!r} computed {result.name!r}, which it does not "
                                 f"declare (declared: {sorted(specs)})")
            if result.direction != spec.direction:
                raise ValueError(f"endpoint {result.name!r} declared {spec.direction!r} is better, computed with "
                                 f"{result.direction!r}")
            if not math.isfinite(result.value):
                raise ValueError(f"endpoint {result.name!r} of provider {provider.name!r} is {result.value}: "
                                 "no non-finite number becomes a result")
            results.append(result)
    return results
