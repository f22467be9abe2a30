"""Careless inputs across sweep files, export targets, shared folders and cached negative sets (SIGTERM during
``data negatives`` is in test_sweep_signals.py, ``{}`` as a result in test_torn_files.py and test_sweep_plan.py).

Before: ``--methods ti,ti --seeds 0,0`` made 4 tasks of one key; TOML seeds 1.5/true became seed 1;
``styles = "x"`` was split into letters; exporting an ``ldm`` run failed on a missing file and left an
empty folder; ``export --out`` into the run's adapter folder overwrote its model card; negative sets and
adapters were created 0700/0600; a damaged cached negative image pointed at ``data validate``.
"""

import os
import shutil
import stat

import pytest
from conftest import FAST
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.config.recipes import resolve_config
from nsync_bench.data.negatives import negatives_for_config
from nsync_bench.data.styles import ensure_style_data
from nsync_bench.errors import ConfigError, NsyncBenchError
from nsync_bench.export.formats import export
from nsync_bench.pipeline.runner import RunOptions, run
from nsync_bench.sweep.matrix import SweepOptions, SweepSpec, expand, load_sweep_file


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root):
    """A finished TI run and a finished ldm run (the untrained reference)."""
    tmp = tmp_path_factory.mktemp("small")
    options = RunOptions(runs_dir=tmp / "runs", data_root=data_root, tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
                         experiment="small")
    return {method: run(style="toy-ink", method=method, seed=0, overrides=FAST, options=options)
            for method in ("ti", "ldm")}


def test_repeated_methods_and_seeds_make_one_task_per_key(tmp_path, data_root):
    spec = SweepSpec(styles=["toy-ink", "toy-ink"], methods=["ti", "ti"], seeds=[0, 0], overrides=FAST)
    tasks = expand(spec, SweepOptions(runs_dir=str(tmp_path / "runs"), data_root=str(data_root)))
    assert [t.label for t in tasks] == ["toy-ink/ti/seed0"]
    result = CliRunner().invoke(app, ["sweep", "--styles", "toy-ink", "--methods", "ti,ti", "--seeds", "0,0",
                                      "--dry-run", "--runs-dir", str(tmp_path / "runs"), "--data-root",
                                      str(data_root), "--tracking-uri", f"sqlite:///{tmp_path / 'absent.db'}"])
    assert result.exit_code == 0, result.output
    assert "1 runs: 1 to start" in result.output or "1 run: 1 to start" in result.output, result.output


@pytest.mark.parametrize(("line", "match"), [
    ("seeds = [1.5, true]", r"seeds = \[1.5, True\] .* must be a list of integers"),
    ('seeds = ["1"]', r"seeds = \['1'\] .* must be a list of integers"),
    ('styles = "toy-ink"', r"styles = 'toy-ink' .* must be a list of strings, e.g. styles = \["),
])
def test_sweep_files_are_typed(tmp_path, line, match):
    lines = {"styles": 'styles = ["toy-ink"]', "seeds": "seeds = [0]"}
    lines[line.split(" = ")[0]] = line
    path = tmp_path / "bad.toml"
    path.write_text("\n".join([*lines.values(), 'methods = ["ti"]']) + "\n")
    with pytest.raises(ConfigError, match=match):
        load_sweep_file(str(path))


def test_exporting_an_ldm_run_says_there_is_no_adapter_and_leaves_no_folder(tmp_path, runs):
    out = tmp_path / "out"
    with pytest.raises(NsyncBenchError, match=r"`ldm` run: the untrained base model has no adapter to export"):
        export(str(runs["ldm"].run_dir), "diffusers", out)
    assert not out.exists()


@pytest.mark.parametrize("fmt", ["diffusers", "a1111"])
def test_export_into_the_runs_own_adapter_folder_is_refused(runs, fmt):
    adapter = runs["ti"].run_dir / "adapter"
    before = {p.name: p.read_bytes() for p in adapter.iterdir()}
    with pytest.raises(NsyncBenchError, match=r"the run's own adapter folder"):
        export(str(runs["ti"].run_dir), fmt, adapter)
    assert {p.name: p.read_bytes() for p in adapter.iterdir()} == before  # model card and weights untouched


def _modes(root):
    return {stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")] if p.is_dir()}, \
        {stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file()}


def test_negative_sets_and_adapters_are_readable_by_the_group(tmp_path, data_root, runs):
    umask = os.umask(0o002)  # a shared data root: the group may read (and write)
    try:
        root = tmp_path / "data"
        shutil.copytree(ensure_style_data("toy-ink", data_root), root / "toy-ink")
        config = resolve_config(style="toy-ink", method="nsync", profile="smoke", overrides=FAST)
        folder = negatives_for_config(config, root)[0].parent.parent
        assert _modes(folder) == ({0o775}, {0o664})
    finally:
        os.umask(umask)
    dirs, files = _modes(runs["ti"].run_dir / "adapter")  # written under the usual umask 022
    assert dirs == {0o777 & ~umask} and files == {0o666 & ~umask}


def test_a_damaged_cached_negative_image_names_the_command_that_renders_it_again(tmp_path, data_root):
    root = tmp_path / "data"
    shutil.copytree(ensure_style_data("toy-ink", data_root), root / "toy-ink")
    config = resolve_config(style="toy-ink", method="nsync", profile="smoke", overrides=FAST)
    image = negatives_for_config(config, root)[3]
    image.write_bytes(image.read_bytes()[:60])
    with pytest.raises(NsyncBenchError, match=rf"{image.name} .*`nsync-bench data negatives toy-ink --force`"):
        negatives_for_config(config, root)
    again = negatives_for_config(config, root, force=True)
    assert again[3] == image and len(image.read_bytes()) > 60
