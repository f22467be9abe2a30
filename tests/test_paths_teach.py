"""Bad paths and stores are teaching errors (no traceback, exit 2, the path and the fix named)."""

import pytest
from typer.testing import CliRunner

from nsync_bench.cli.main import app


@pytest.fixture
def afile(tmp_path):
    path = tmp_path / "afile"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize(("args", "fragments"), [
    (["--runs-dir", "{afile}/runs"], ["runs folder", "below the regular file", "--runs-dir"]),
    (["--data-root", "{afile}/data"], ["data root", "below the regular file", "--data-root"]),
    (["--tracking-uri", "sqlite:///{afile}/mlflow.db"], ["SQLite store's folder", "regular file", "--tracking-uri"]),
    (["--tracking-uri", "sqlite:////proc/nsync/mlflow.db"], ["/proc", "kernel file system", "--tracking-uri"]),
    (["--tracking-uri", "file://{tmp}/mlruns"], ["file store", "no longer supports", "sqlite:///"]),
    (["--tracking-uri", "{tmp}/mlruns"], ["file store", "sqlite:///"]),
])
def test_unusable_locations_teach_before_anything_is_written(args, fragments, afile, tmp_path, data_root):
    args = [a.format(afile=afile, tmp=tmp_path) for a in args]
    defaults = {"--runs-dir": str(tmp_path / "runs"), "--data-root": str(data_root),
                "--tracking-uri": f"sqlite:///{tmp_path / 'ok.db'}"}
    for option, value in defaults.items():
        if option not in args:
            args += [option, value]
    result = CliRunner().invoke(app, ["run", "--style", "toy-ink", "--method", "ti", *args])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert all(f in message for f in fragments), message
    assert "Traceback" not in message and not (tmp_path / "runs").exists()


def test_report_on_a_mistyped_store_creates_nothing(tmp_path):
    result = CliRunner().invoke(app, ["report", "--tracking-uri", f"sqlite:///{tmp_path / 'typo.db'}"])
    assert result.exit_code == 2 and "no MLflow store" in result.output
    assert not (tmp_path / "typo.db").exists()


def test_unexpected_errors_are_one_line_unless_debugging(monkeypatch, tmp_path):
    import nsync_bench.config.recipes

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(nsync_bench.config.recipes, "resolve_config", broken)
    result = CliRunner().invoke(app, ["run", "--style", "toy-ink", "--method", "ti"])
    assert result.exit_code == 1 and "unexpected RuntimeError: boom" in result.output and "--debug" in result.output
    debug = CliRunner().invoke(app, ["--debug", "run", "--style", "toy-ink", "--method", "ti"])
    assert isinstance(debug.exception, RuntimeError)
