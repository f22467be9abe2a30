"""Issue 20, item 5: a name never escapes its folder.

Before: ``--experiment 'a/../../../escape'`` wrote the run outside the runs folder, a newline in the name
made a folder with a line break, and a 300-character name was refused (as an OSError) only after the data
had been prepared. Now every user string that becomes a path component is checked first, with a
teaching error, before anything is read, rendered or written.
"""

import pytest
from typer.testing import CliRunner

from nsync_bench.cli.main import app

HOSTILE = ["a/../../../escape", "two\nlines", "x" * 300, "..", ".hidden", "back\\slash", "nul\x00byte"]


@pytest.mark.parametrize("name", HOSTILE)
def test_run_refuses_an_experiment_name_that_is_not_one_folder_before_any_work(tmp_path, name):
    data_root = tmp_path / "data"  # empty: the toy style would be rendered here by any work at all
    result = CliRunner().invoke(app, ["run", "--style", "toy-ink", "--method", "ti", "--experiment", name,
                                      "--runs-dir", str(tmp_path / "runs"), "--data-root", str(data_root),
                                      "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    message = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "experiment name" in message and "folder name" in message and "--experiment" in message, message
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no runs folder, no data, no store: nothing at all


@pytest.mark.parametrize("name", ["a/../../escape", "two\nlines"])
def test_sweep_refuses_the_same_names(tmp_path, name):
    result = CliRunner().invoke(app, ["sweep", "--styles", "toy-ink", "--methods", "ti", "--seeds", "0",
                                      "--experiment", name, "--runs-dir", str(tmp_path / "runs"),
                                      "--data-root", str(tmp_path / "data"), "--tracking-uri",
                                      f"sqlite:///{tmp_path / 'm.db'}"])
    assert result.exit_code == 2, result.output
    assert "experiment name" in " ".join(result.output.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_ordinary_names_pass_and_the_refusal_suggests_one():
    from nsync_bench.paths import PathError, check_name

    for name in ("nsync-bench-smoke", "paper_v2.1", "exp+lora=4@gpu"):
        assert check_name(name, "experiment", "--experiment") == name
    with pytest.raises(PathError, match=r"contains ' ', '/'.*e.g. 'my-run-2'"):
        check_name("my run/2", "experiment", "--experiment")
