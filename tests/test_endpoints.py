"""Plug-in endpoints: the registry's rules, the toy world's probe endpoints in closed form, on real
renders, and logged by a run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nsync_bench.metrics import endpoints as ep
from nsync_bench.world import render as wr
from nsync_bench.world.endpoints import endpoint_values, requested_values

LINEN = wr.target("world-linen")
DUSK = wr.target("world-dusk")


def _linen_captions(backgrounds: list[str | None]) -> list[str]:
    """Captions naming each background, or none (None)."""
    return [f"a red circle on the left on a {b} background" if b else "a red circle on the left" for b in backgrounds]


def _predicted(n: int, **overrides: list[str]) -> dict[str, list[str]]:
    """Every image predicted with the linen style's values, except the heads given."""
    base = {a: [getattr(LINEN.style, a)] * n for a in wr.ATTRIBUTES}
    return {**base, **overrides}


def test_linen_is_a_nuisance_target_whose_style_leaves_the_background_out():
    assert LINEN.kind == "nuisance" and LINEN.nuisance == "background" and LINEN.style.background == "white"
    assert LINEN.style_attributes == ("palette", "texture", "edge") and LINEN.naming_rate == 0.5
    assert DUSK.style_attributes == wr.ATTRIBUTES
    # a combination base training knows: it is not held out (the base model stays the shipped one)
    assert LINEN.style in set(wr.base_styles()) and len(wr.base_styles()) == 80


def test_linen_splits_name_half_the_backgrounds_independently_of_the_value():
    from collections import Counter

    from nsync_bench.world.targets import draw

    train, test = draw("world-linen", "train", 48), draw("world-linen", "test", 96)
    assert {s.background for s in train.styles} == {"white"}
    assert sum("background" in c for c in train.captions) == 24
    named = Counter((s.background, "background" in c) for s, c in zip(test.styles, test.captions, strict=True))
    assert named == {(b, k): 16 for b in wr.BACKGROUNDS for k in (True, False)}
    # a caption that names the background names the image's own
    assert all(c.endswith(f"on a {s.background} background") for s, c in zip(test.styles, test.captions, strict=True)
               if "background" in c)


def test_leakage_override_and_nuisance_fidelity_in_closed_form():
    asked = [None, None, None, None, "white", "black", "gray", "black", "gray"]
    got = ["white", "gray", "white", "black", "white", "white", "gray", "black", "black"]
    values = endpoint_values(LINEN, _predicted(9, background=got), _linen_captions(asked))
    # open prompts: images 0-3; white in 0 and 2 -> 2/4
    assert values["leakage"] == (0.5, 4)
    # prompts naming another value: images 5-8; white in 5 -> 1/4
    assert values["prompt_override"] == (0.25, 4)
    # prompts naming a value: images 4-8; rendered as named in 4, 6, 7 -> 3/5
    assert values["nuisance_fidelity"] == (0.6, 5)
    # the background is not part of linen's style: a wrong background costs no style fidelity
    assert values["style_fidelity"] == (1.0, 9)
    assert "style_match_background" not in values


def test_style_fidelity_needs_every_style_attribute():
    palette = ["muted", "muted", "vivid", "muted"]
    texture = ["striped", "plain", "striped", "striped"]
    edge = ["soft", "soft", "soft", "sharp"]
    values = endpoint_values(LINEN, _predicted(4, palette=palette, texture=texture, edge=edge),
                             _linen_captions(["white"] * 4))
    assert values["style_match_palette"] == (0.75, 4)
    assert values["style_match_texture"] == (0.75, 4)
    assert values["style_match_edge"] == (0.75, 4)
    assert values["style_fidelity"] == (0.25, 4)  # only image 0 matches all three


def test_an_endpoint_with_an_empty_denominator_is_left_out():
    values = endpoint_values(LINEN, _predicted(3), _linen_captions(["white"] * 3))
    assert "leakage" not in values and "prompt_override" not in values and values["nuisance_fidelity"] == (1.0, 3)
    values = endpoint_values(LINEN, _predicted(2), _linen_captions([None, None]))
    assert values["leakage"] == (1.0, 2) and "nuisance_fidelity" not in values


def test_a_target_without_nuisance_has_style_endpoints_only():
    predicted = {a: [getattr(DUSK.style, a)] * 2 for a in wr.ATTRIBUTES}
    predicted["background"] = ["black", "white"]
    values = endpoint_values(DUSK, predicted, ["a red circle on the left", "a blue ring at the top"])
    assert values["style_match_background"] == (0.5, 2) and values["style_fidelity"] == (0.5, 2)
    assert "leakage" not in values and "nuisance_fidelity" not in values


def test_captions_name_at_most_one_nuisance_value():
    assert requested_values(LINEN, _linen_captions(["gray", None, "black"])) == ["gray", None, "black"]
    with pytest.raises(ValueError, match="names 2 background values"):
        requested_values(LINEN, ["a red circle on a white background on a black background"])
    with pytest.raises(ValueError, match="3 palette predictions for 2 images"):
        endpoint_values(LINEN, _predicted(2, palette=["muted"] * 3), _linen_captions(["white"] * 2))


class _Dummy:
    name = "dummy-endpoints"
    specs = (ep.EndpointSpec("dummy_share", "higher", "a test endpoint"),)

    def __init__(self, value: float = 0.25, name: str = "dummy_share", direction: ep.Direction = "higher") -> None:
        self.value, self.result_name, self.direction = value, name, direction

    def applies(self, style: str) -> bool:
        return style == "toy-pastel"

    def compute(self, generated: ep.GeneratedSet) -> list[ep.EndpointResult]:
        return [ep.EndpointResult(self.result_name, self.value, self.direction, "dummy", len(generated.images))]


@pytest.fixture
def dummy():
    provider = _Dummy()
    ep.register(provider)
    yield provider
    ep.unregister(provider.name)


def _set(style: str = "toy-pastel") -> ep.GeneratedSet:
    return ep.GeneratedSet(style, (Path("a.png"), Path("b.png")), ("a", "b"))


def test_registry_computes_applicable_providers_only(dummy):
    results = ep.compute_endpoints(_set(), only=[dummy])
    assert [(r.name, r.value, r.n_images) for r in results] == [("dummy_share", 0.25, 2)]
    assert ep.compute_endpoints(_set("toy-ink"), only=[dummy]) == []
    assert "dummy_share" in ep.declared()
    ep.register(dummy)  # the same object again: fine
    with pytest.raises(ValueError, match="already registered"):
        ep.register(_Dummy())


@pytest.mark.parametrize(("provider", "message"), [
    (_Dummy(name="undeclared"), "does not declare"),
    (_Dummy(direction="lower"), "declared 'higher'"),
    (_Dummy(value=math.nan), "non-finite"),
])
def test_registry_refuses_what_a_provider_did_not_promise(provider, message):
    with pytest.raises(ValueError, match=message):
        ep.compute_endpoints(_set(), only=[provider])


def test_an_endpoint_may_not_shadow_a_metric():
    class Shadow(_Dummy):
        name = "shadow"
        specs = (ep.EndpointSpec("fid", "lower", "not allowed"),)

    with pytest.raises(ValueError, match="metric names"):
        ep.register(Shadow())
    assert ep.GeneratedSet("s", (), ())  # empty is a valid set; mismatched lengths are not
    with pytest.raises(ValueError, match="one caption per image"):
        ep.GeneratedSet("s", (Path("a.png"),), ())


@pytest.mark.parametrize("name", ["world-linen", "world-dusk"])
def test_real_renders_score_full_style_and_no_leakage(tmp_path, name):
    """The probe on the targets' own test renders: S = 1, and L at its base rate (0: the probe reads
    backgrounds without error)."""
    from nsync_bench.world.endpoints import ProbeEndpoints
    from nsync_bench.world.model import WEIGHTS_DIR
    from nsync_bench.world.targets import draw

    probe_endpoints = ProbeEndpoints(WEIGHTS_DIR)

    drawn = draw(name, "test", 48)
    files = []
    for i, image in enumerate(drawn.images):
        files.append(tmp_path / f"{i}.png")
        image.save(files[-1])
    results = {r.name: r for r in probe_endpoints.compute(ep.GeneratedSet(name, tuple(files), tuple(drawn.captions)))}
    assert results["style_fidelity"].value == 1.0
    assert results["style_fidelity"].implementation.startswith("toy-world-probe:")
    if name == "world-linen":
        assert results["prompt_override"].value == 0.0 and results["nuisance_fidelity"].value == 1.0
        # the open prompts' real images spread over the three backgrounds: leakage's base rate
        open_images = [s for s, c in zip(drawn.styles, drawn.captions, strict=True) if "background" not in c]
        assert results["leakage"].n_images == len(open_images) == 24
        assert results["leakage"].value == sum(s.background == "white" for s in open_images) / 24 == 1 / 3
    # a set of other-style renders is not mistaken for the target
    other = wr.WorldStyle("vivid", "plain", "white", "sharp")
    wrong = wr.to_uint8(wr.render([wr.Content("circle", "red", "on the left")] * 4, [other] * 4, seed=0))
    from PIL import Image

    for i, pixels in enumerate(wrong):
        Image.fromarray(pixels, "RGB").save(tmp_path / f"w{i}.png")
    wrong_set = ep.GeneratedSet(name, tuple(tmp_path / f"w{i}.png" for i in range(4)),
                                tuple(drawn.captions[:4]))
    assert {r.name: r.value for r in probe_endpoints.compute(wrong_set)}["style_fidelity"] == 0.0


@pytest.mark.slow
def test_a_toy_world_run_logs_the_probe_endpoints(run_options):
    """ldm on world-linen (nothing to train): the world registers its endpoints when its model loads, and
    the evaluation stage logs them as metrics with direction tags."""
    import mlflow

    from nsync_bench.pipeline.runner import run

    result = run(style="world-linen", method="ldm", seed=0, profile="toy",
                 overrides=["eval.max_prompts=12", "eval.num_inference_steps=4"], options=run_options)
    for name in ("style_fidelity", "leakage", "prompt_override", "nuisance_fidelity", "style_match_texture"):
        assert 0.0 <= result.metrics[f"metrics/{name}"] <= 1.0
    mlflow.set_tracking_uri(run_options.tracking_uri)
    row = mlflow.search_runs(experiment_names=["test"]).iloc[0]
    assert row["tags.metric.leakage.direction"] == "lower is better"
    assert row["tags.metric.style_fidelity.direction"] == "higher is better"
    assert row["tags.metric.leakage.implementation"].startswith("toy-world-probe:")


def _fake_run(tmp_path: Path, style: str, count: int) -> Path:
    """A finished run's folder as `world endpoints` reads it: config.json and eval/images with a manifest,
    the "generated" images being real test renders (so the expected values are known)."""
    import json

    from nsync_bench.world.targets import draw

    run_dir = tmp_path / style / "ti" / "seed3-abc"
    images = run_dir / "eval" / "images"
    images.mkdir(parents=True)
    drawn = draw(style, "test", count)
    with (images / "manifest.jsonl").open("w") as handle:
        for i, (caption, image) in enumerate(zip(drawn.captions, drawn.images, strict=True)):
            image.save(images / f"{i:05d}.png")
            handle.write(json.dumps({"index": i, "caption": caption, "prompt": f"{caption} in the style of x",
                                     "seed": i, "source": f"s{i}.png", "file": f"{i:05d}.png"}) + "\n")
    config = {"run": {"style": style, "method": "ti", "seed": 3}, "nsync": {"rule": "paper"}}
    (run_dir / "config.json").write_text(json.dumps({"config": config}))
    return run_dir


def test_world_endpoints_command_reads_finished_runs(tmp_path):
    import csv

    from typer.testing import CliRunner

    from nsync_bench.cli.main import app

    run_dir = _fake_run(tmp_path, "world-linen", 24)
    out = tmp_path / "endpoints.csv"
    result = CliRunner().invoke(app, ["world", "endpoints", str(run_dir), "--csv", str(out)])
    assert result.exit_code == 0, result.output
    row = next(csv.DictReader(out.open()))
    assert (row["style"], row["method"], row["seed"], row["rule"]) == ("world-linen", "ti", "3", "paper")
    assert float(row["style_fidelity"]) == 1.0 and float(row["prompt_override"]) == 0.0
    # a folder that is not a run, and a run of a style that is not the world's: one-line refusals
    bad = CliRunner().invoke(app, ["world", "endpoints", str(tmp_path)])
    assert bad.exit_code == 2 and "not a finished run folder" in bad.output
    (run_dir / "config.json").write_text('{"config": {"run": {"style": "monet", "method": "ti", "seed": 0}}}')
    other = CliRunner().invoke(app, ["world", "endpoints", str(run_dir)])
    assert other.exit_code == 2 and "not a toy-world target" in other.output
