"""The toy world's endpoints: what the probe's heads read off a run's generated images.

For a target with style attributes A (all four for ``world-dusk``; palette, texture and edge for
``world-linen``, whose background is a nuisance) and generated images i = 1..n, the probe predicts
each image's attribute values p_a(i):

* ``style_match_<a>`` = (1/n) Σ_i [p_a(i) = target_a], for a in A (higher is better);
* ``style_fidelity`` S = (1/n) Σ_i Π_{a∈A} [p_a(i) = target_a]: the share of images whose style
  attributes all match the target's (higher is better).

For a *nuisance* target (all training images share the value N of attribute ν; some captions name
the value, "... on a white background", r_i being the value image i's caption names, or none):

* ``leakage`` L = Σ_i [r_i = none][p_ν(i) = N] / Σ_i [r_i = none]: the share of images carrying N
  among those whose prompt leaves ν open (lower is better). It measures what the style token decides
  when the prompt does not. Its references: the real test images score 1/|values of ν| (1/3: the
  test split spreads ν evenly), the untrained base model what its default for an open ν is; a token
  that has taken N up as part of the style scores up to 1;
* ``prompt_override`` = Σ_i [r_i ∉ {none, N}][p_ν(i) = N] / Σ_i [r_i ∉ {none, N}]: the share carrying
  N although the prompt asked for another value (lower is better; 0 on real renders);
* ``nuisance_fidelity`` = the share rendering the value the prompt named, among the images whose
  prompt names one (higher is better).

An endpoint whose denominator is empty (no open prompt, say) is left out, not reported as 0.

The pure function :func:`endpoint_values` computes these from predicted labels, so it is tested on
synthetic probe outputs; :class:`ProbeEndpoints` feeds it the committed probe's predictions and is
registered with ``nsync_bench.metrics.endpoints`` when the world's model source is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from nsync_bench.metrics.endpoints import EndpointResult, EndpointSpec, GeneratedSet, register, unregister
from nsync_bench.world import render as wr
from nsync_bench.world.probe import STYLE_HEADS, cached_probe, probe_input

PROVIDER = "toy-world-probe"
SPECS = (
    EndpointSpec("style_fidelity", "higher",
                 "share of generated images whose style attributes (probe heads) all match the target's"),
    *(EndpointSpec(f"style_match_{a}", "higher", f"share of generated images whose {a} matches the target's")
      for a in wr.ATTRIBUTES),
    EndpointSpec("leakage", "lower",
                 "share of images carrying the training images' shared nuisance value among those whose prompt "
                 "names no value of it"),
    EndpointSpec("prompt_override", "lower",
                 "share of images carrying the shared nuisance value although their prompt named another value"),
    EndpointSpec("nuisance_fidelity", "higher",
                 "share of images whose nuisance attribute is the value their prompt named (prompts naming one)"),
)
_DIRECTIONS = {spec.name: spec.direction for spec in SPECS}


def requested_values(target: wr.WorldTarget, captions: Sequence[str]) -> list[str | None]:
    """The nuisance value each caption names ("... on a gray background" -> "gray"), None where it names none."""
    assert target.nuisance is not None
    phrase = wr.NUISANCE_PHRASES[target.nuisance]
    values = "|".join(STYLE_HEADS[target.nuisance])
    pattern = re.compile(re.escape(phrase).replace(re.escape("{value}"), f"({values})"))
    out: list[str | None] = []
    for caption in captions:
        found = pattern.findall(caption)
        if len(found) > 1:
            raise ValueError(f"caption {caption!r} names {len(found)} {target.nuisance} values (at most one, as "
                             f"{phrase.format(value='...')!r}): the nuisance endpoints need the value it asks for")
        out.append(found[0] if found else None)
    return out


def endpoint_values(target: wr.WorldTarget, predicted: Mapping[str, Sequence[str]],
                    captions: Sequence[str]) -> dict[str, tuple[float, int]]:
    """Endpoint name -> (value, denominator) from the probe's predicted attribute values per image."""
    n = len(captions)
    if n == 0:
        raise ValueError("no generated images: the endpoints are shares of images")
    for attribute in wr.ATTRIBUTES:
        if len(predicted[attribute]) != n:
            raise ValueError(f"{len(predicted[attribute])} {attribute} predictions for {n} images")
    matches = {a: np.array([p == getattr(target.style, a) for p in predicted[a]]) for a in target.style_attributes}
    out = {f"style_match_{a}": (float(m.mean()), n) for a, m in matches.items()}
    out["style_fidelity"] = (float(np.logical_and.reduce(list(matches.values())).mean()), n)
    if target.nuisance is not None:
        shared = getattr(target.style, target.nuisance)
        asked = np.array(requested_values(target, captions), dtype=object)
        got = np.array(list(predicted[target.nuisance]), dtype=object)
        is_open = np.array([a is None for a in asked])
        groups = {"leakage": (is_open, got == shared),
                  "prompt_override": (~is_open & (asked != shared), got == shared),
                  "nuisance_fidelity": (~is_open, got == asked)}
        for name, (where, hit) in groups.items():
            if where.any():  # an empty denominator leaves the endpoint out
                out[name] = (float(hit[where].mean()), int(where.sum()))
    return out


def predict_attributes(files: Sequence[Path], probe_dir: Path,
                       batch_size: int = 64) -> tuple[dict[str, list[str]], str]:
    """The probe's style-attribute predictions per image file, and the probe's sha256."""
    from nsync_bench.data.pixels import load_rgb

    probe, digest = cached_probe(str(probe_dir))
    labels: dict[str, list[str]] = {head: [] for head in STYLE_HEADS}
    for start in range(0, len(files), batch_size):
        batch = torch.stack([probe_input(load_rgb(f)) for f in files[start:start + batch_size]])
        with torch.no_grad():
            logits = probe(batch)
        for head, values in STYLE_HEADS.items():
            labels[head] += [values[int(k)] for k in logits[head].argmax(1)]
    return labels, digest


class ProbeEndpoints:
    """The probe's endpoints for the toy world's targets (the probe in ``probe_dir``)."""

    name = PROVIDER
    specs = SPECS

    def __init__(self, probe_dir: Path) -> None:
        self.probe_dir = Path(probe_dir)

    def applies(self, style: str) -> bool:
        return style in wr.TARGETS

    def compute(self, generated: GeneratedSet) -> list[EndpointResult]:
        target = wr.target(generated.style)
        predicted, digest = predict_attributes(list(generated.images), self.probe_dir)
        implementation = f"{PROVIDER}:style-heads,argmax@sha256={digest[:12]}"
        return [EndpointResult(name, value, _DIRECTIONS[name], implementation, count)
                for name, (value, count) in endpoint_values(target, predicted, generated.captions).items()]


def register_endpoints(probe_dir: Path) -> None:
    """Make the probe's endpoints part of every run's evaluation (idempotent for one folder)."""
    from nsync_bench.metrics.endpoints import providers

    if not any(isinstance(p, ProbeEndpoints) and p.probe_dir == Path(probe_dir) for p in providers()):
        unregister(PROVIDER)
        register(ProbeEndpoints(probe_dir))
