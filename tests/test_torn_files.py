"""Issue 20, item 3: torn files are detected and recoverable, never fatal for good. Each test tears a file itself.

Before: a truncated or ``[]`` ``result.json``/``config.json`` made ``run``, ``sweep --retry-failed`` and
``export`` fail with "unexpected JSONDecodeError / AttributeError"; a truncated feature-cache ``.npz``
raised ``BadZipFile`` on every later run of the style; a truncated checkpoint gave a traceback and a
FAILED run; a truncated adapter exported with exit 0. Now what the project later trusts is written
atomically and verified on read: a bad cache entry is recomputed, a bad checkpoint falls back or names
``--restart``, a bad result is recomputed, a bad adapter or record is refused with its name.
"""

import json
import logging
import shutil

import pytest
from conftest import FAST
from PIL import Image
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.config.recipes import resolve_config
from nsync_bench.config.run_config import MetricsConfig
from nsync_bench.errors import NsyncBenchError
from nsync_bench.export.formats import export
from nsync_bench.metrics.scoring import score_image_sets
from nsync_bench.pipeline.runner import RESULT_FILE, RunOptions, finished_result, run, run_directory
from nsync_bench.sweep.matrix import SweepOptions, SweepSpec, expand, select_tasks, state_path


def tear(path, keep=0.5):
    """Truncate ``path`` to a fraction of its bytes, as a crash mid-write or a bad copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_root):
    """One finished smoke TI run; tests copy its folder before damaging anything."""
    tmp = tmp_path_factory.mktemp("torn")
    options = RunOptions(runs_dir=tmp / "runs", data_root=data_root, tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
                         experiment="torn")
    return run(style="toy-ink", method="ti", seed=0, overrides=FAST, options=options), options


def _config():
    return resolve_config(style="toy-ink", method="ti", seed=0, profile="smoke", overrides=FAST)


def test_a_feature_cache_entry_torn_on_disk_is_dropped_and_recomputed(tmp_path, caplog):
    images = []
    for k in range(4):
        images.append(tmp_path / f"{k}.png")
        Image.new("RGB", (32, 32), (40 * k, 20, 200 - 40 * k)).save(images[-1])
    config = MetricsConfig(names=["fid", "cmmd", "csd"], extractors="smoke", device="cpu")
    first = score_image_sets(images[:2], images[2:], config, cache_root=tmp_path / "cache")
    entries = sorted((tmp_path / "cache").rglob("*.npz"))
    assert entries
    for entry in entries:
        tear(entry)
    with caplog.at_level(logging.WARNING, logger="nsync_bench"):
        again = score_image_sets(images[:2], images[2:], config, cache_root=tmp_path / "cache")
    assert {k: r.value for k, r in again.results.items()} == {k: r.value for k, r in first.results.items()}
    assert "damaged" in caplog.text and "recomputed" in caplog.text
    third = score_image_sets(images[:2], images[2:], config, cache_root=tmp_path / "cache")  # rewritten whole
    assert {k: r.value for k, r in third.results.items()} == {k: r.value for k, r in first.results.items()}


@pytest.mark.parametrize("damage", ["truncated", "list", "empty object", "other key"])
def test_a_damaged_result_is_not_finished_and_is_set_aside(tmp_path, finished, damage):
    result, options = finished
    options = RunOptions(runs_dir=tmp_path / "runs", data_root=options.data_root, tracking_uri=options.tracking_uri,
                         experiment=options.experiment, track=False)
    run_dir = run_directory(_config(), options, result.run_key)
    shutil.copytree(result.run_dir, run_dir)
    path = run_dir / RESULT_FILE
    if damage == "truncated":
        tear(path)
    elif damage == "list":
        path.write_text("[]")
    elif damage == "empty object":
        path.write_text("{}")
    else:
        path.write_text(json.dumps({**json.loads(path.read_text()), "run_key": "0" * 16}))
    assert finished_result(_config(), options, result.run_key) is None
    assert not path.exists() and len(list(run_dir.glob("result.json.bad-*"))) == 1  # kept for inspection


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_a_run_with_a_torn_result_is_recomputed_in_its_folder(tmp_path, finished):
    result, options = finished
    options = RunOptions(runs_dir=tmp_path / "runs", data_root=options.data_root,
                         tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="again")
    run_dir = run_directory(_config(), options, result.run_key)
    shutil.copytree(result.run_dir, run_dir)
    (run_dir / "mlflow_run_id").unlink()
    tear(run_dir / RESULT_FILE)
    again = run(style="toy-ink", method="ti", seed=0, overrides=FAST, options=options)
    assert not again.skipped and again.metrics == result.metrics  # recomputed bit-identically on CPU
    assert finished_result(_config(), options, result.run_key) is not None


def test_sweep_retry_failed_survives_a_torn_state_file(tmp_path, data_root):
    spec = SweepSpec(styles=["toy-ink"], methods=["ti"], seeds=[0], overrides=FAST, experiment="state")
    options = SweepOptions(runs_dir=str(tmp_path / "runs"), data_root=str(data_root))
    path = state_path(spec, options)
    path.parent.mkdir(parents=True)
    tasks = expand(spec, options)
    for text in ("[]", '{"a": ', '{"k": 3}'):
        path.write_text(text)
        assert select_tasks(tasks, spec, options, retry_failed=True) == []  # nothing known to have failed


def _interrupt_at(step):
    def callback(current):
        if current == step:
            raise KeyboardInterrupt

    return callback


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_a_torn_checkpoint_falls_back_to_the_previous_one(run_options, caplog):
    overrides = [*FAST, "train.checkpoints_keep=2"]
    run_options.callbacks = [_interrupt_at(4)]
    with pytest.raises(KeyboardInterrupt):
        run(style="toy-ink", method="ti", seed=0, overrides=overrides, options=run_options)
    config = resolve_config(style="toy-ink", method="ti", seed=0, profile="smoke", overrides=overrides)
    checkpoints = run_directory(config, run_options) / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-0000003", "checkpoint-0000004"]
    tear(checkpoints / "checkpoint-0000004" / "state.pt")
    run_options.callbacks = []
    with caplog.at_level(logging.INFO, logger="nsync_bench"):
        result = run(style="toy-ink", method="ti", seed=0, overrides=overrides, options=run_options)
    assert result.metrics["eval/num_images"] == 2 and not result.skipped
    assert "checkpoint-0000004/state.pt does not match the sha256" in caplog.text
    assert "resumed from" in caplog.text and "checkpoint-0000003 (step 3)" in caplog.text
    assert "set the damaged checkpoint-0000004 aside as .bad-checkpoint-0000004" in caplog.text


@pytest.mark.slow  # end-to-end run(s): kept out of the fast tier
def test_a_torn_only_checkpoint_names_the_file_and_restart(run_options):
    run_options.callbacks = [_interrupt_at(4)]
    with pytest.raises(KeyboardInterrupt):
        run(style="toy-ink", method="ti", seed=0, overrides=FAST, options=run_options)
    state = run_directory(_config(), run_options) / "checkpoints" / "checkpoint-0000004" / "state.pt"
    tear(state)
    argv = ["run", "--style", "toy-ink", "--method", "ti", *[a for s in FAST for a in ("--set", s)], "--runs-dir",
            str(run_options.runs_dir), "--data-root", str(run_options.data_root), "--tracking-uri",
            run_options.tracking_uri, "--experiment", run_options.experiment]
    out = CliRunner().invoke(app, argv)
    message = " ".join(out.output.split())
    assert out.exit_code == 2, out.output
    assert "checkpoint-0000004/state.pt" in message and "--restart" in message and "unexpected" not in message
    assert CliRunner().invoke(app, argv).exit_code == 2  # never a silent start from step 0
    restarted = CliRunner().invoke(app, [*argv, "--restart"])
    assert restarted.exit_code == 0, restarted.output


def _copy_run(tmp_path, finished):
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0].run_dir, run_dir)
    return run_dir


@pytest.mark.parametrize("victim", ["config.json", "result.json"])
def test_export_refuses_a_torn_record_naming_it(tmp_path, finished, victim):
    run_dir = _copy_run(tmp_path, finished)
    tear(run_dir / victim, keep=0.3)
    with pytest.raises(NsyncBenchError, match=rf"{victim} is unreadable or truncated"):
        export(str(run_dir), "a1111", tmp_path / "out")
    (run_dir / victim).write_text("[]")
    with pytest.raises(NsyncBenchError, match=rf"{victim} holds a JSON list"):
        export(str(run_dir), "a1111", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["diffusers", "a1111"])
def test_export_refuses_a_torn_adapter_naming_it(tmp_path, finished, fmt):
    run_dir = _copy_run(tmp_path, finished)
    tear(run_dir / "adapter" / "learned_embeds.safetensors")
    with pytest.raises(NsyncBenchError, match=r"adapter/learned_embeds.safetensors does not match the sha256"):
        export(str(run_dir), fmt, tmp_path / "out")
    assert not (tmp_path / "out").exists()
