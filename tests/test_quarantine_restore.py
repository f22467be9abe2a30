"""Images too small for a resolution are not advised into quarantine; `data restore` undoes a quarantine."""

import shutil

import pytest
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.data.styles import ensure_style_data
from nsync_bench.data.validate import check_before_run
from nsync_bench.errors import DataError


@pytest.fixture
def toy_root(tmp_path, data_root):
    shutil.copytree(ensure_style_data("toy-pastel", data_root), tmp_path / "toy-pastel")
    return tmp_path


def _contents(style_dir):
    return {p.relative_to(style_dir): p.read_bytes() for p in style_dir.rglob("*")
            if p.is_file() and not p.name.startswith(".") and p.name != "REASONS.txt"}


def test_a_resolution_problem_is_not_advised_as_corruption(toy_root):
    with pytest.raises(DataError) as info:
        check_before_run("toy-pastel", toy_root, 512)  # the sd15 profile on a 32 px toy style
    message = str(info.value)
    assert "resolution problem" in message and "--set model.resolution" in message and "all 32" in message
    assert "--quarantine`" not in message


def test_data_restore_moves_quarantined_files_back(toy_root):
    style_dir = toy_root / "toy-pastel"
    before = _contents(style_dir)
    runner = CliRunner()
    validated = runner.invoke(app, ["data", "validate", "toy-pastel", "--resolution", "512", "--data-root",
                                    str(toy_root)])
    assert validated.exit_code == 1 and "resolution problem" in " ".join(validated.output.split())
    emptied = runner.invoke(app, ["data", "validate", "toy-pastel", "--resolution", "512", "--quarantine",
                                  "--data-root", str(toy_root)])
    assert not list((style_dir / "train").glob("*.png"))  # what the issue saw: the style emptied
    assert emptied.exit_code == 1
    restored = runner.invoke(app, ["data", "restore", "toy-pastel", "--data-root", str(toy_root)])
    assert restored.exit_code == 0 and "32 file(s) moved back" in restored.output
    assert _contents(style_dir) == before  # images and captions, same bytes, same places
    assert not (style_dir / "quarantine").exists()
    check_before_run("toy-pastel", toy_root, 32)
