"""NSYNC's negative set: deterministic, cached, paired by file stem, user folders checked."""

import json
import shutil

import pytest
from conftest import FAST
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.config.recipes import resolve_config
from nsync_bench.data.negatives import META_FILE, negatives_for_config
from nsync_bench.errors import DataError


def config_for(*overrides):
    return resolve_config(style="toy-ink", method="nsync", profile="smoke", overrides=[*FAST, *overrides])


@pytest.fixture
def fresh_root(tmp_path, data_root):
    """A data root with the toy style copied in but no negatives yet."""
    root = tmp_path / "data"
    from nsync_bench.data.styles import ensure_style_data

    shutil.copytree(ensure_style_data("toy-ink", data_root), root / "toy-ink")
    return root


def test_negative_set_pairs_every_training_image_by_stem(fresh_root):
    paths = negatives_for_config(config_for(), fresh_root)
    positives = sorted((fresh_root / "toy-ink" / "train").glob("*.png"))
    assert [p.stem for p in paths] == [p.stem for p in positives]
    meta = json.loads((paths[0].parent.parent / META_FILE).read_text())
    caption = (positives[0].with_suffix(".txt")).read_text().strip()
    assert meta["images"][0]["prompt"] == f"{caption} in the style of drawing"  # toy-ink's initializer word
    assert meta["spec"]["seed"] == 0


@pytest.mark.slow
def test_negative_set_regenerates_bit_identically_and_differs_by_seed(tmp_path, fresh_root):
    first = negatives_for_config(config_for(), fresh_root)
    other_root = tmp_path / "other"
    shutil.copytree(fresh_root / "toy-ink", other_root / "toy-ink")
    second = negatives_for_config(config_for(), other_root)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    reseeded = negatives_for_config(config_for("negatives.seed=1"), fresh_root)
    assert reseeded[0].parent != first[0].parent  # a different cache key
    assert reseeded[0].read_bytes() != first[0].read_bytes()


def test_negative_set_is_cached(fresh_root, monkeypatch):
    first = negatives_for_config(config_for(), fresh_root)
    import nsync_bench.data.negatives as negatives

    def fail(*args, **kwargs):
        raise AssertionError("regenerated a cached negative set")

    monkeypatch.setattr(negatives, "generate_negative_set", fail)
    assert negatives_for_config(config_for(), fresh_root) == first


def test_user_supplied_negative_folder_must_cover_every_stem(tmp_path, fresh_root):
    folder = tmp_path / "mine"
    folder.mkdir()
    positives = sorted((fresh_root / "toy-ink" / "train").glob("*.png"))
    for path in positives[:-2]:
        shutil.copy(path, folder / path.name)
    with pytest.raises(DataError, match=positives[-1].stem):
        negatives_for_config(config_for(f"nsync.negatives_dir='{folder}'"), fresh_root)
    for path in positives[-2:]:
        shutil.copy(path, folder / path.with_suffix(".png").name)
    assert len(negatives_for_config(config_for(f"nsync.negatives_dir='{folder}'"), fresh_root)) == len(positives)


@pytest.mark.slow
def test_data_negatives_command(fresh_root):
    argv = ["data", "negatives", "toy-ink", "--data-root", str(fresh_root)]
    for item in FAST:
        argv += ["--set", item]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert "24 negative images" in result.output


def test_a_killed_negative_render_is_not_counted_as_a_cached_set(tmp_path, data_root):
    from nsync_bench.data.styles import ensure_style_data, style_status

    ensure_style_data("toy-ink", data_root)
    base = tmp_path / "negatives" / "tiny" / "toy-ink"
    (base / ".tmp-negatives-abc" / "train").mkdir(parents=True)  # what a killed render leaves
    (base / "0123456789abcdef" / "train").mkdir(parents=True)
    (base / "0123456789abcdef" / "negatives.json").write_text("{}")
    (tmp_path / "toy-ink").symlink_to(data_root / "toy-ink")
    assert style_status("toy-ink", tmp_path).negative_sets == 1
