"""The procedural toy styles: deterministic, same content across styles, clearly different looks.

The pixel thresholds below carry wide margins over values measured for seeds 0-5 (see each test).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nsync_bench.data import procedural
from nsync_bench.data.procedural import PROCEDURAL_STYLES, render_procedural_style
from nsync_bench.errors import ConfigError, UnknownNameError


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("toy")
    return {style: _render(style, root / style) for style in PROCEDURAL_STYLES}


def _render(style: str, out: Path, **kwargs: int) -> Path:
    render_procedural_style(style, out, **kwargs)
    return out


def _captions(root: Path, split: str) -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted((root / split).glob("*.txt"))]


def _gray(root: Path) -> np.ndarray:
    """(n_images, n_pixels) luminance, train then test, sorted by name."""
    paths = sorted((root / "train").glob("*.png")) + sorted((root / "test").glob("*.png"))
    return np.stack([np.asarray(Image.open(p).convert("L"), dtype=np.float64).ravel() for p in paths])


def _saturation(root: Path) -> float:
    paths = sorted(root.glob("*/*.png"))
    return float(np.mean([np.asarray(Image.open(p).convert("HSV"))[..., 1].mean() for p in paths]))


def test_layout_size_mode_and_return_value(tmp_path: Path) -> None:
    out = tmp_path / "pastel"
    paths = render_procedural_style("toy-pastel", out, n_train=5, n_test=3, size=48)
    assert [p.name for p in paths[:2]] == ["toy-pastel_train_000.png", "toy-pastel_train_001.png"]
    assert paths[-1] == out / "test" / "toy-pastel_test_002.png"
    assert len(paths) == 8
    for png in paths:
        with Image.open(png) as image:
            assert image.format == "PNG"
            assert image.mode == "RGB"
            assert image.size == (48, 48)
        caption = png.with_suffix(".txt").read_text(encoding="utf-8")
        assert caption.endswith("\n")
        assert caption.count("\n") == 1
        assert len(caption.strip()) > 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pastel"]  # no temporary directory left


def test_default_counts(rendered: dict[str, Path]) -> None:
    for root in rendered.values():
        assert len(list((root / "train").glob("*.png"))) == 24
        assert len(list((root / "train").glob("*.txt"))) == 24
        assert len(list((root / "test").glob("*.png"))) == 8
        assert len(list((root / "test").glob("*.txt"))) == 8


@pytest.mark.parametrize("style", PROCEDURAL_STYLES)
def test_byte_for_byte_deterministic(style: str, tmp_path: Path) -> None:
    first = _render(style, tmp_path / "a", n_train=6, n_test=3)
    second = _render(style, tmp_path / "b", n_train=6, n_test=3)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 18
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
    other_seed = _render(style, tmp_path / "c", n_train=6, n_test=3, seed=1)
    assert _captions(first, "train") != _captions(other_seed, "train")


def test_styles_share_content_and_captions(rendered: dict[str, Path]) -> None:
    pastel, ink = rendered["toy-pastel"], rendered["toy-ink"]
    for split in ("train", "test"):
        assert _captions(pastel, split) == _captions(ink, split)


def test_captions_vary_within_and_across_splits(rendered: dict[str, Path]) -> None:
    root = rendered["toy-pastel"]
    train, test = _captions(root, "train"), _captions(root, "test")
    # Measured: all 24 train and 8 test captions unique, no overlap, for seeds 0-5.
    assert len(set(train)) >= 0.75 * len(train)
    assert len(set(test)) >= 0.75 * len(test)
    assert not set(train) & set(test)


def test_pastel_is_bright_and_low_contrast(rendered: dict[str, Path]) -> None:
    gray = _gray(rendered["toy-pastel"])
    # Measured per image (seeds 0-5): mean 228.7-240.8, std 1.9-11.5, min 189-231.
    assert gray.mean(axis=1).min() > 215
    assert gray.std(axis=1).max() < 18
    assert gray.min(axis=1).min() > 165


def test_ink_is_dark_lined_and_high_contrast(rendered: dict[str, Path]) -> None:
    gray = _gray(rendered["toy-ink"])
    # Measured per image (seeds 0-5): mean 197.1-230.5, std 22.2-68.1, min 0-13.
    assert gray.min(axis=1).max() < 50
    assert gray.std(axis=1).min() > 15
    assert 180 < gray.mean() < 240  # mostly paper


def test_styles_differ_in_statistics(rendered: dict[str, Path]) -> None:
    pastel, ink = _gray(rendered["toy-pastel"]), _gray(rendered["toy-ink"])
    # Same content, so compare image by image: ink is always the more contrasted one.
    assert np.all(ink.std(axis=1) > pastel.std(axis=1) + 5)
    assert ink.std(axis=1).mean() > 3 * pastel.std(axis=1).mean()  # measured ~49 vs ~7
    assert pastel.mean() - ink.mean() > 10  # measured ~235 vs ~215
    # Measured mean HSV saturation: pastel ~19-20, ink (cream paper, blue ink) ~33-36.
    assert _saturation(rendered["toy-ink"]) - _saturation(rendered["toy-pastel"]) > 6


def test_unknown_style_lists_valid_styles(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError) as info:
        render_procedural_style("toy-inky", tmp_path / "x")
    message = str(info.value)
    assert "toy-ink" in message
    assert "toy-pastel" in message
    assert "'toy-inky'" in message
    assert not (tmp_path / "x").exists()


def test_bad_arguments_and_existing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        render_procedural_style("toy-ink", tmp_path / "x", size=4)
    with pytest.raises(ConfigError):
        render_procedural_style("toy-ink", tmp_path / "x", n_train=-1)
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(FileExistsError):
        render_procedural_style("toy-ink", existing, n_train=1, n_test=1)
    assert list(existing.iterdir()) == []


def test_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> np.ndarray:
        raise RuntimeError("renderer broke")

    monkeypatch.setitem(procedural._RENDERERS, "toy-ink", broken)
    with pytest.raises(RuntimeError, match="renderer broke"):
        render_procedural_style("toy-ink", tmp_path / "out", n_train=2, n_test=1)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writer_winning_the_race_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _render("toy-pastel", tmp_path / "reference", n_train=2, n_test=1)
    out = tmp_path / "race" / "toy-pastel"
    real_replace = procedural.os.replace

    def other_process_finishes_first(src: Path, dst: Path) -> None:
        shutil.copytree(reference, dst)
        real_replace(src, dst)  # now fails: dst is a non-empty directory

    monkeypatch.setattr(procedural.os, "replace", other_process_finishes_first)
    paths = render_procedural_style("toy-pastel", out, n_train=2, n_test=1)
    assert all(p.is_file() for p in paths)
    assert sorted(p.name for p in out.parent.iterdir()) == ["toy-pastel"]  # our temporary copy is gone
