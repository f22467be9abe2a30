"""The data identity: content digests of images, captions and captioner are part of the run key."""

import json
import shutil

import pytest
from conftest import FAST
from mlflow.tracking import MlflowClient

import nsync_bench.data.identity as identity_module
from nsync_bench.config.recipes import resolve_config
from nsync_bench.data.captions import TemplateCaptioner, caption_style
from nsync_bench.data.identity import dataset_inputs, run_data_identity
from nsync_bench.data.run_key import run_key
from nsync_bench.data.styles import ensure_style_data
from nsync_bench.pipeline.runner import full_run_key, run
from nsync_bench.sweep.matrix import SweepOptions, SweepSpec, expand


@pytest.fixture
def own_style(tmp_path, data_root, monkeypatch):
    """A private copy of toy-pastel to change, and a private cache (digests, captions)."""
    monkeypatch.setenv("NSYNC_BENCH_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "data"
    shutil.copytree(ensure_style_data("toy-pastel", data_root), root / "toy-pastel")
    return root / "toy-pastel"


def _config(method="ti", overrides=()):
    return resolve_config(style="toy-pastel", method=method, seed=0, profile="smoke", overrides=list(overrides))


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_changed_images_or_captions_change_the_key_and_are_not_reused(run_options, own_style):
    run_options.data_root = own_style.parent
    first = run(style="toy-pastel", method="ti", seed=0, overrides=FAST, options=run_options)
    recorded = json.loads((first.run_dir / "config.json").read_text())["data_identity"]
    assert recorded["train"]["count"] == 24 and len(recorded["train"]["images"]) == 64
    assert recorded["test"]["captioner"] == "files"
    params = MlflowClient(run_options.tracking_uri).get_run(first.mlflow_run_id).data.params
    assert params["data_identity.train.images"] == recorded["train"]["images"]

    # The reproducer: other data under the same style name ("data import ... --force").
    train = sorted((own_style / "train").glob("*.png"))
    shutil.copyfile(train[1], train[0])
    second = run(style="toy-pastel", method="ti", seed=0, overrides=FAST, options=run_options)
    assert not second.skipped and second.run_key != first.run_key

    caption = (own_style / "test" / sorted(p.name for p in (own_style / "test").glob("*.txt"))[0])
    caption.write_text("a different test caption\n")
    assert full_run_key(_config(overrides=FAST), run_options) != second.run_key


def test_the_captioner_is_recorded_and_part_of_the_key(tmp_path, own_style):
    before = run_data_identity(_config(), own_style.parent)
    report = caption_style("toy-pastel", own_style.parent, TemplateCaptioner("a pastel picture"), overwrite=True,
                           cache_root=tmp_path / "captions")
    assert report.written == 32
    after = run_data_identity(_config(), own_style.parent)
    assert after["train"]["captioner"] == "template:template:a pastel picture"
    assert after["test"]["captions"] != before["test"]["captions"]
    assert run_key(_config(), after) != run_key(_config(), before)
    # A caption edited by hand after captioning is no longer the captioner's.
    first = sorted((own_style / "train").glob("*.txt"))[0]
    first.write_text("edited by hand\n")
    edited = run_data_identity(_config(), own_style.parent)
    assert edited["train"]["captioner"] == "files,template:template:a pastel picture"


def test_images_are_hashed_once_and_again_only_when_changed(own_style, monkeypatch):
    calls = []
    original = identity_module.file_sha256
    monkeypatch.setattr(identity_module, "file_sha256", lambda path: calls.append(path) or original(path))
    first = run_data_identity(_config(), own_style.parent)
    assert len(calls) == 32  # 24 train + 8 test
    calls.clear()
    assert run_data_identity(_config(), own_style.parent) == first and calls == []
    image = sorted((own_style / "test").glob("*.png"))[0]
    image.write_bytes(sorted((own_style / "test").glob("*.png"))[1].read_bytes())
    changed = run_data_identity(_config(), own_style.parent)
    assert calls == [image] and changed["test"]["images"] != first["test"]["images"]


def test_a_users_negative_set_is_in_the_key_and_moving_the_data_is_not(tmp_path, own_style):
    negatives = tmp_path / "negatives"
    shutil.copytree(own_style / "train", negatives)
    config = _config("nsync", [f"nsync.negatives_dir={negatives}"])
    identity = run_data_identity(config, own_style.parent)
    assert identity["negatives"]["count"] == 24
    key = run_key(config, identity)
    shutil.copyfile(sorted(negatives.glob("*.png"))[1], sorted(negatives.glob("*.png"))[0])
    assert run_key(config, run_data_identity(config, own_style.parent)) != key
    moved = tmp_path / "elsewhere"
    shutil.copytree(own_style.parent, moved)
    assert run_data_identity(_config(), moved)["train"] == {**run_data_identity(_config(), own_style.parent)["train"],
                                                            "source": str(moved / "toy-pastel" / "train")}
    assert run_key(_config(), run_data_identity(_config(), moved)) == \
        run_key(_config(), run_data_identity(_config(), own_style.parent))
    inputs = dataset_inputs(identity)
    assert set(inputs) == {"training", "evaluation", "negatives"}  # MLflow's dataset-input contexts
    assert inputs["negatives"]["source"] == str(negatives) and len(inputs["training"]["digest"]) == 16


def test_a_sweep_skips_by_the_same_key_a_run_uses(tmp_path, own_style):
    from nsync_bench.pipeline.runner import RunOptions

    options = SweepOptions(runs_dir=str(tmp_path / "runs"), data_root=str(own_style.parent))
    tasks = expand(SweepSpec(styles=["toy-pastel"], methods=["ti", "nsync"], seeds=[0, 1], overrides=FAST), options)
    run_options = RunOptions(runs_dir=tmp_path / "runs", data_root=own_style.parent)
    for task in tasks:
        config = resolve_config(style=task.style, method=task.method, seed=task.seed, profile="smoke", overrides=FAST)
        assert task.run_key == full_run_key(config, run_options) != run_key(config)
