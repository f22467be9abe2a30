"""What a run needs, checked before it starts: `run --dry-run`'s plan, the preflight's weights check, the README."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.config.recipes import resolve_config
from nsync_bench.errors import DataError, ModelNotAvailableError
from nsync_bench.pipeline import readiness
from nsync_bench.pipeline.preflight import check_before_training, check_downloads
from nsync_bench.pipeline.readiness import plan_run

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def bare(tmp_path, monkeypatch):
    """A machine with no weights, no data and an empty Hugging Face cache, offline."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("NSYNC_BENCH_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("NSYNC_BENCH_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("NSYNC_BENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    """The CLI's console is made once per process: widen it, so no table cell folds a hash."""
    from nsync_bench.cli.app import console

    monkeypatch.setattr(console, "width", 400)


def _dry_run(argv: list[str]):
    return CliRunner().invoke(app, [*argv, "--dry-run"])


def test_on_a_bare_machine_the_dry_run_prints_the_whole_plan_and_exits_2(bare):
    result = _dry_run(["run", "--profile", "sd15", "--style", "monet", "--method", "nsync"])
    assert result.exit_code == 2, result.output
    out = result.output
    assert "451f4fe16113bff5a5d2269ed5ad43b0592e9a14" in out and "4.27 GB" in out  # base model: revision, size
    assert "40e92fad63a361b8136100cd234c42d401ef9b34ff1748234318929ebcc7e7a1" in out and "2.44 GB" in out  # CSD
    assert "5bc26a6fb0487f3f00a2a7313135103a005b1b67" in out  # CSD's pinned commit
    for command in ("hf download stable-diffusion-v1-5/stable-diffusion-v1-5 --revision 451f4fe1",
                    "nsync-bench data fetch monet", "nsync-bench data captions monet --captioner blip --device auto",
                    "nsync-bench weights fetch inception-clean", "nsync-bench weights fetch clip-vit-l-14-336",
                    "nsync-bench weights fetch csd-vit-l"):
        assert command in out, command
    assert "hf download Salesforce/blip-image-captioning-large --revision 353689b8" in out  # the captioner
    assert out.index("hf download Salesforce") < out.index("$ nsync-bench data captions monet")
    assert "not ready: 7 need(s)" in out and "Traceback" not in out
    assert not (bare / "runs").exists() and not (bare / "weights").exists()  # nothing written or fetched


def test_a_run_that_needs_nothing_is_ready(bare):
    result = _dry_run(["run", "--style", "toy-pastel", "--method", "nsync"])  # smoke: built-in models and extractors
    assert result.exit_code == 0, result.output
    assert "ready" in result.output and "run key:" in result.output


def test_online_with_a_pinned_identity_the_run_fetches_it_itself(bare, monkeypatch):
    monkeypatch.setattr(readiness, "is_offline", lambda: False)
    plan = plan_run(resolve_config(style="toy-pastel", method="ti", profile="sd15"), bare / "data", bare / "weights")
    status = {need.what: need.status for need in plan.needs}
    assert status["base model"] == "download"  # pinned commit: diffusers fetches it
    assert status["metric weights csd-vit-l"] == "download"  # sha256 registered
    assert status["metric weights clip-vit-l-14-336"] == "download"  # hub commit pinned
    assert status["metric weights inception-clean"] == "missing"  # no registered checksum: fetched knowingly


def test_missing_weights_stop_a_run_before_training_offline(bare):
    config = resolve_config(style="toy-pastel", method="ti", profile="smoke",
                            overrides=["metrics.extractors=real", 'metrics.names=["csd"]'])
    with pytest.raises(ModelNotAvailableError, match=r"csd-vit-l.*nsync-bench weights fetch csd-vit-l.*Nothing was "
                                                     "trained"):
        check_before_training(config, bare / "data", bare / "weights")


def test_online_the_preflight_fetches_verifiable_weights_before_training(bare, monkeypatch):
    from nsync_bench.metrics import weights

    fetched = []
    monkeypatch.setattr(readiness, "is_offline", lambda: False)
    monkeypatch.setattr(weights, "fetch", lambda name, weights_dir=None, **kw: fetched.append(name))
    config = resolve_config(style="toy-pastel", method="ti", profile="smoke",
                            overrides=["metrics.extractors=real", 'metrics.names=["csd", "cmmd"]'])
    check_downloads(config, bare / "weights")
    assert fetched == ["clip-vit-l-14-336", "csd-vit-l"]


def test_missing_captions_name_the_command_and_a_time_estimate(data_root, tmp_path):
    import shutil

    style = tmp_path / "toy-pastel"
    shutil.copytree(data_root / "toy-pastel", style) if (data_root / "toy-pastel").is_dir() else None
    if not style.is_dir():
        from nsync_bench.data.styles import ensure_style_data

        ensure_style_data("toy-pastel", tmp_path)
    for caption in (style / "test").glob("*.txt"):
        caption.unlink()
    config = resolve_config(style="toy-pastel", method="ti", profile="smoke")
    with pytest.raises(DataError, match=r"nsync-bench data captions toy-pastel --captioner blip --device auto.*"
                                        r"on a GPU.*on a CPU"):
        check_before_training(config, tmp_path)


def _readme_real_runs() -> list[list[str]]:
    lines = [line.split("#")[0].strip() for line in README.read_text(encoding="utf-8").splitlines()]
    runs = [shlex.split(line)[1:] for line in lines if re.match(r"nsync-bench run .*--profile sd15", line)]
    return [[arg for arg in argv if arg != "--dry-run"] for argv in runs]


def test_the_readmes_real_model_examples_are_valid_runs(bare):
    examples = _readme_real_runs()
    assert len(examples) == 2
    for argv in examples:
        result = _dry_run(argv)
        assert result.exit_code == 2, result.output  # offline without weights: downloads and steps to do ...
        assert "blocked" not in result.output, (argv, result.output)  # ... but nothing that no command fixes
        assert "Traceback" not in result.output
    # the combination the README used to show: 64 px toy images at SD 1.5's 512 px
    old = _dry_run(["run", "--profile", "sd15", "--protocol", "paper-code", "--style", "toy-pastel", "--method", "ti"])
    assert old.exit_code == 2 and "blocked" in old.output and "model.resolution=256" in old.output


@pytest.mark.parametrize("method", ["ti", "nsync"])
def test_a_run_resolves_its_style_data_once(method, run_options, monkeypatch):
    """The style's manifest, folder and splits are resolved once per run and passed down (identity, the
    pre-training check, training, negatives, evaluation), not looked up again at each stage."""
    from conftest import FAST

    from nsync_bench.data import styles
    from nsync_bench.pipeline.runner import run

    calls: dict[str, int] = {}

    def counted(name):
        original = getattr(styles, name)

        def wrapper(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return original(*args, **kwargs)
        monkeypatch.setattr(styles, name, wrapper)

    for name in ("resolve_style_data", "ensure_style_data", "list_images"):
        counted(name)
    result = run(style="toy-pastel", method=method, seed=0, overrides=[*FAST, "eval.at_steps=[3]"],
                 options=run_options)
    assert not result.skipped
    assert calls == {"resolve_style_data": 1, "ensure_style_data": 1, "list_images": 2}  # train and test splits
