"""High-bit-depth images keep their intensities when converted to RGB (they used to turn white)."""

import numpy as np
import pytest
from PIL import Image

from nsync_bench.data.pixels import load_rgb, to_rgb
from nsync_bench.errors import DataError


def _gradient16(path):
    values = np.linspace(1000, 60000, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(values).save(path)
    return values.astype(np.float64) / 65535 * 255


def test_a_16_bit_png_keeps_its_mean_intensity(tmp_path):
    loader = load_rgb
    expected = _gradient16(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as image:
        assert image.mode.startswith("I")  # PIL opens it as 16/32-bit integer grayscale
    rgb = np.asarray(loader(tmp_path / "deep.png"), dtype=np.float64)
    assert rgb.shape == (64, 64, 3)
    assert abs(rgb.mean() - expected.mean()) < 1.0  # PIL's own convert saturates it to ~255
    assert np.abs(rgb[..., 0] - expected).max() <= 1.0
    assert (rgb >= 254.5).mean() < 0.05


def test_float_and_8_bit_modes():
    as_float = Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32), mode="F")
    assert np.asarray(to_rgb(as_float)).mean() == pytest.approx(128, abs=1)
    gray = Image.fromarray(np.full((4, 4), 77, dtype=np.uint8), mode="L")
    assert np.asarray(to_rgb(gray)).mean() == 77


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, b"", b"not an image at all"])
def test_one_loader_treats_a_bad_image_the_same_everywhere(tmp_path, content):
    """Training batches, scoring and captioning decode through the same function, so a bad file gives the
    same error (naming the file and the fix) wherever it is met."""
    import nsync_bench.metrics.scoring as scoring
    import nsync_bench.training.batches as batches
    from nsync_bench.data.captions import TemplateCaptioner

    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    assert batches.load_rgb is load_rgb and scoring.load_rgb is load_rgb
    messages = []
    for call in (load_rgb, lambda p: TemplateCaptioner("a text").caption_paths([p])):
        with pytest.raises(DataError, match=r"cannot decode image .*bad\.png.*data validate") as caught:
            call(bad)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
