"""Claims files (nsync_bench.report.claims): the schema, its teaching errors, and every shipped file."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from nsync_bench.compat import tomllib
from nsync_bench.errors import ConfigError
from nsync_bench.paths import shipped_dir
from nsync_bench.report.claims import EXPLORATORY, claims_path, load_claims, parse_claims

EXAMPLE = """
schema = 1
description = "NSYNC improves style fidelity over TI in the toy world."
plan = "README.md"
arms = ["untrained"]

[rule]
test = "both"
alpha = 0.05
power = 0.8

[endpoints.leakage]
direction = "lower"
description = "share of images showing a negative-set attribute"
label = "Leakage"

[[claims]]
id = "nsync-beats-ti-dusk"
text = "NSYNC improves CSD and log FID over TI on world-dusk"
candidate = "nsync"
baseline = "ti"
metrics = ["csd", "fid", "leakage"]
styles = ["world-dusk"]
family = "style-fidelity"

[claims.effects]
csd = { raw = 0.056, reason = "one attribute" }
fid = { raw = 0.1, reason = "a 10 % ratio" }
leakage = { d_z = 1.0, reason = "no pilot SD yet" }

[claims.transforms]
fid = "log"

[[claims]]
id = "nsync-lora-beats-lora-dusk"
text = "NSYNC-LoRA improves CSD over LoRA on world-dusk"
candidate = "nsync-lora"
baseline = "lora"
metrics = ["csd"]
styles = ["world-dusk"]
family = "style-fidelity"

[claims.effects]
csd = { raw = 0.056, reason = "as above" }

[[claims]]
id = "ti-beats-untrained"
text = "TI beats the untrained prompt"
candidate = "ti"
baseline = "untrained"
metrics = ["csd"]

[claims.effects]
csd = { d_z = 2, reason = "a control must be large" }
"""


@pytest.fixture
def example():
    return tomllib.loads(EXAMPLE)


def test_the_published_example_parses(example):
    claims = parse_claims(example, "example")
    assert claims.rule.test == "both" and claims.rule.alpha == 0.05 and claims.rule.power == 0.8
    assert claims.rule.declared and claims.plan == "README.md" and claims.arms == ("untrained",)
    assert claims.endpoints["leakage"].direction == "lower" and claims.endpoints["leakage"].label == "Leakage"
    first, _, third = claims.claims
    assert first.metrics == ("csd", "fid", "leakage") and first.styles == ("world-dusk",)
    assert first.effects["csd"].kind == "raw" and first.effects["csd"].value == 0.056
    assert first.effects["leakage"].kind == "d_z" and first.effects["fid"].reason == "a 10 % ratio"
    assert first.transform("fid") == "log" and first.transform("csd") == "none"
    assert third.effects["csd"].value == 2.0 and isinstance(third.effects["csd"].value, float)
    # Families: grouped claims share one; a claim without `family` is its own.
    assert {k: [c.id for c in v] for k, v in claims.families().items()} == {
        "style-fidelity": ["nsync-beats-ti-dusk", "nsync-lora-beats-lora-dusk"],
        "ti-beats-untrained": ["ti-beats-untrained"]}
    assert claims.claim_for("nsync", "ti", "fid", "world-dusk") is first
    assert claims.claim_for("nsync", "ti", "fid", "world-etching") is None  # style filter
    assert claims.claim_for("nsync", "ti", "kid", "world-dusk") is None  # metric not claimed
    assert claims.directions()["leakage"] == "lower" and claims.directions()["csd"] == "higher"


def test_defaults_when_the_rule_is_not_declared(example):
    del example["rule"]
    rule = parse_claims(example, "example").rule
    assert (rule.test, rule.alpha, rule.power, rule.declared) == ("auto", 0.05, 0.8, False)


def _broken(example, edit):
    data = copy.deepcopy(example)
    edit(data)
    with pytest.raises(ConfigError) as info:
        parse_claims(data, "example")
    return str(info.value)


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: d.update(colour="red"), "unknown key(s) ['colour']"),
    (lambda d: d.update(schema=2), "schema 1"),
    (lambda d: d.pop("description"), "description: must be a non-empty string"),
    (lambda d: d.update(plan="baselines/experiments/missing.md"), "commit the plan"),
    (lambda d: d["rule"].update(test="wilcoxon"), "use one of t, permutation, both"),
    (lambda d: d["rule"].update(alpha=1.5), "rule.alpha"),
    (lambda d: d["rule"].update(power=0.01), "rule.power"),
    (lambda d: d["endpoints"].update(fid={"direction": "lower", "description": "x"}), "built-in metric"),
    (lambda d: d["endpoints"]["leakage"].update(direction="up"), "'lower' or 'higher'"),
    (lambda d: d["endpoints"]["leakage"].pop("description"), "endpoints.leakage.description"),
    (lambda d: d["endpoints"].update({"Bad-Name": {"direction": "lower", "description": "x"}}), "lower-case"),
    (lambda d: d.update(claims=[]), "at least one [[claims]]"),
    (lambda d: d["claims"][0].update(candidate="nsycn"), "unknown method 'nsycn'"),
    (lambda d: d["claims"][0].update(baseline="nsync"), "both 'nsync'"),
    (lambda d: d["claims"][0].update(metrics=["csd", "fidd"]), "unknown metric 'fidd'"),
    (lambda d: d["claims"][0].update(metrics=[]), "non-empty list"),
    (lambda d: d["claims"][0].update(styles=["world-dawn"]), "unknown style 'world-dawn'"),
    (lambda d: d["claims"][0].update(family=EXPLORATORY), "reserved"),
    (lambda d: d["claims"][0]["effects"].pop("fid"), "effects.fid: missing"),
    (lambda d: d["claims"][0].pop("effects"), "declare the smallest effect of interest"),
    (lambda d: d["claims"][0]["effects"]["csd"].update(d_z=1.0), "exactly one of raw"),
    (lambda d: d["claims"][0]["effects"]["csd"].update(raw=-0.1), "positive finite number"),
    (lambda d: d["claims"][0]["effects"]["csd"].update(raw=float("inf")), "positive finite number"),
    (lambda d: d["claims"][0]["effects"]["csd"].pop("reason"), "effects.csd.reason"),
    (lambda d: d["claims"][0]["effects"].update(kid={"d_z": 1, "reason": "x"}), "unknown key(s) ['kid']"),
    (lambda d: d["claims"][0]["transforms"].update(fid="sqrt"), "not a transform"),
    (lambda d: d["claims"][0]["transforms"].update(kid="log"), "unknown key(s) ['kid']"),
    (lambda d: d["claims"][1].update(id="nsync-beats-ti-dusk"), "duplicate id"),
    (lambda d: d["claims"][1].update(id="Bad Id"), "lower-case letters"),
    # The same comparison in two claims (overlapping styles, or one claim without a style filter).
    (lambda d: d["claims"][1].update(candidate="nsync", baseline="ti"), "belongs to one claim"),
    (lambda d: (d["claims"][1].update(candidate="nsync", baseline="ti"), d["claims"][1].pop("styles")),
     "every style"),
])
def test_bad_files_teach(example, edit, expected):
    assert expected in _broken(example, edit)


def test_disjoint_style_filters_may_share_a_comparison(example):
    example["claims"][1].update(candidate="nsync", baseline="ti", styles=["world-etching"])
    claims = parse_claims(example, "example")
    assert claims.claim_for("nsync", "ti", "csd", "world-etching").id == "nsync-lora-beats-lora-dusk"


def test_every_shipped_claims_file_loads():
    """baselines/claims.toml and every file in baselines/claims/ (other helpers' files included)."""
    paths = [claims_path(None), *sorted((shipped_dir("baselines") / "claims").glob("*.toml"))]
    assert len(paths) >= 2
    for path in paths:
        claims = load_claims(path)
        for claim in claims.claims:
            assert set(claim.effects) == set(claim.metrics), (path, claim.id)


def test_names_and_paths_resolve(tmp_path):
    assert claims_path(None).name == "claims.toml"
    assert claims_path("toy-control") == shipped_dir("baselines") / "claims" / "toy-control.toml"
    assert load_claims("toy-control").arms == ("untrained", "floor")
    with pytest.raises(ConfigError, match=r"no claims file 'nope'.*toy-control"):
        claims_path("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("claims = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_claims(bad)
    good = tmp_path / "good.toml"
    good.write_text(EXAMPLE.replace('plan = "README.md"\n', ""))
    assert load_claims(good).path == good and load_claims(Path(str(good))).plan is None
