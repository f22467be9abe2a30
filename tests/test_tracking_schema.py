"""The MLflow tag names live in tracking/schema.py alone: writers and readers build them there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from nsync_bench.tracking import schema

PACKAGE = Path(__file__).resolve().parents[1] / "nsync_bench"
# A tag name spelled out: the kind tag, or a per-metric tag ("metric.fid.n_real", f"metric.{name}.direction").
SPELLED_TAG = re.compile(r"^(nsync_bench\.kind|metric\.)")


def test_metric_tags_round_trip():
    tags = schema.metric_tags("fid", direction="lower", implementation="fid|x", n_generated=4, n_real=8)
    assert tags == {"metric.fid.direction": "lower is better", "metric.fid.implementation": "fid|x",
                    "metric.fid.n_generated": "4", "metric.fid.n_real": "8"}
    assert schema.direction_of(tags[schema.metric_tag("fid", schema.DIRECTION)]) == "lower"
    assert schema.direction_of(schema.direction_text("higher")) == "higher"
    assert all(schema.is_metric_tag(name) for name in tags)
    assert schema.column(schema.KIND) == "tags.nsync_bench.kind"
    assert schema.kind_filter(schema.REPORT_KIND) == "tags.`nsync_bench.kind` = 'report'"


def test_run_tags_take_a_mapping_or_the_run_section():
    class Spec:
        style, method, seed, profile, protocol = "s", "ti", 3, "smoke", "matched"

    expected = {"style": "s", "method": "ti", "seed": 3, "profile": "smoke", "protocol": "matched", "run_key": "k"}
    assert schema.run_tags(Spec(), "k") == expected
    assert schema.run_tags({**expected}, "k") == expected


def _spelled_tags(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_fstrings = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in in_fstrings \
                and SPELLED_TAG.match(node.value):
            found.append(f"{path.name}:{node.lineno}: {node.value!r}")
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) \
                and SPELLED_TAG.match(str(node.values[0].value)):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_but_the_schema_spells_a_tag_name():
    schema_file = PACKAGE / "tracking" / "schema.py"
    spelled = [hit for path in sorted(PACKAGE.rglob("*.py")) if path != schema_file for hit in _spelled_tags(path)]
    assert not spelled, "build tag names with nsync_bench.tracking.schema:\n" + "\n".join(spelled)


def test_the_check_sees_a_spelled_tag(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('TAGS = {"nsync_bench.kind": "run", f"metric.{1}.n_real": "2", "style": "s"}\n')
    assert len(_spelled_tags(module)) == 2
