"""Captioners, the caption cache and `nsync-bench data captions`: offline and fast.

Toy styles are rendered into each test's tmp_path (never the shared session data root), because
these tests write and delete caption files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.data.blip import BlipCaptioner
from nsync_bench.data.captions import CAPTIONERS, TemplateCaptioner, caption_style, make_captioner
from nsync_bench.data.internvl import QUESTION, dynamic_tiles
from nsync_bench.data.styles import ensure_style_data, list_images
from nsync_bench.errors import ConfigError, DataError, ModelNotAvailableError, UnknownNameError

STYLE = "toy-ink"


@pytest.fixture
def style_dir(tmp_path: Path) -> Path:
    return ensure_style_data(STYLE, tmp_path / "data")


def _images(style_dir: Path) -> list[Path]:
    return [img.path for split in ("train", "test") for img in list_images(style_dir, split)]


def _drop_captions(style_dir: Path) -> list[Path]:
    paths = _images(style_dir)
    for path in paths:
        path.with_suffix(".txt").unlink()
    return paths


def _caption(path: Path) -> str:
    return path.with_suffix(".txt").read_text(encoding="utf-8").strip()


def _run(style_dir: Path, captioner, tmp_path: Path, **kwargs):
    return caption_style(STYLE, style_dir.parent, captioner, cache_root=tmp_path / "cache", **kwargs)


def test_registry_names_and_unknown_name():
    assert sorted(CAPTIONERS) == ["blip", "files", "internvl", "template"]
    assert all(":" in target for target in CAPTIONERS.values())
    with pytest.raises(UnknownNameError) as err:
        make_captioner("blipp")
    message = str(err.value)
    assert "unknown captioner 'blipp'" in message and "blip, files, internvl, template" in message
    assert "Did you mean 'blip'" in message
    with pytest.raises(ConfigError, match="does not take option"):
        make_captioner("template", model="x")
    with pytest.raises(ConfigError, match="takes: no options"):
        make_captioner("files", text="x")


def test_template_captioner_writes_its_text(style_dir, tmp_path):
    paths = _drop_captions(style_dir)
    captioner = make_captioner("template", text="a  drawing\n")
    assert captioner.model_id == "template:a drawing"
    assert captioner.caption([Image.new("RGB", (8, 8))] * 2) == ["a drawing", "a drawing"]
    report = _run(style_dir, captioner, tmp_path)
    assert (report.images, report.written, report.captioned, report.kept) == (len(paths), len(paths), len(paths), 0)
    assert {_caption(p) for p in paths} == {"a drawing"}
    record = json.loads((style_dir / "captions.json").read_text())
    assert record["captioner"] == "template" and record["model_id"] == "template:a drawing"
    assert record["written"] == len(paths) and "date" in record
    assert make_captioner("template").caption([Image.new("RGB", (8, 8))]) == ["an image"]


def test_files_captioner_reads_and_never_writes(style_dir, tmp_path):
    paths = _images(style_dir)
    before = {p: _caption(p) for p in paths}
    captioner = make_captioner("files")
    assert captioner.caption_paths(paths[:2]) == [before[p] for p in paths[:2]]
    with Image.open(paths[0]) as opened:
        assert captioner.caption([opened]) == [before[paths[0]]]
    report = _run(style_dir, captioner, tmp_path, overwrite=True)
    assert (report.kept, report.written, report.captioned) == (len(paths), 0, 0)
    assert {p: _caption(p) for p in paths} == before
    assert not (tmp_path / "cache").exists()


def test_files_captioner_missing_txt_teaches(style_dir, tmp_path):
    paths = _drop_captions(style_dir)
    with pytest.raises(DataError) as err:
        _run(style_dir, make_captioner("files"), tmp_path)
    message = str(err.value)
    assert paths[0].with_suffix(".txt").name in message
    assert message.count(".txt,") <= 4  # at most five names listed
    assert "--captioner template" in message and "blip" in message


def test_cache_hits_and_miss_after_bytes_change(style_dir, tmp_path, monkeypatch):
    paths = _drop_captions(style_dir)
    captioner = TemplateCaptioner("x")
    calls: list[int] = []
    original = captioner.caption

    def counting(images):
        calls.append(len(images))
        return original(images)

    monkeypatch.setattr(captioner, "caption", counting)
    first = _run(style_dir, captioner, tmp_path)
    assert (first.captioned, first.cache_hits, sum(calls)) == (len(paths), 0, len(paths))
    cached = list((tmp_path / "cache" / "template").rglob("*.json"))
    assert len(cached) == len(paths)
    entry = json.loads(cached[0].read_text())
    assert entry["caption"] == "x" and entry["model_id"] == "template:x" and len(entry["sha256"]) == 64
    assert cached[0].parent.name == entry["sha256"][:2]

    calls.clear()
    second = _run(style_dir, captioner, tmp_path, overwrite=True)
    assert (second.captioned, second.cache_hits, second.written, calls) == (0, len(paths), len(paths), [])

    with Image.open(paths[0]) as image:  # same size, different bytes
        image.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(paths[0])
    third = _run(style_dir, captioner, tmp_path, overwrite=True)
    assert (third.captioned, third.cache_hits, sum(calls)) == (1, len(paths) - 1, 1)

    other = TemplateCaptioner("y")  # another model_id never sees "x"
    assert _run(style_dir, other, tmp_path, overwrite=True).cache_hits == 0
    assert _caption(paths[0]) == "y"


def test_existing_captions_kept_unless_overwrite(style_dir, tmp_path):
    paths = _images(style_dir)
    shipped = _caption(paths[0])
    paths[1].with_suffix(".txt").unlink()
    captioner = TemplateCaptioner("x")
    kept = _run(style_dir, captioner, tmp_path)
    assert (kept.kept, kept.written, kept.captioned) == (len(paths) - 1, 1, 1)
    assert _caption(paths[0]) == shipped and _caption(paths[1]) == "x"
    replaced = _run(style_dir, captioner, tmp_path, overwrite=True, splits=["test"])
    assert replaced.splits == ["test"] and replaced.written == replaced.images
    assert _caption(paths[0]) == shipped  # a train image: not in the requested split
    assert all(_caption(img.path) == "x" for img in list_images(style_dir, "test"))


# ------------------------------------------------------------------------------------------- BLIP
@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight BLIP captioner with a 16-word vocabulary, saved like a hub snapshot."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    root = tmp_path_factory.mktemp("blip")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]",
             "a", "an", "image", "of", "red", "blue", "house", "tree", "sun", "painting"]
    (root / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    try:  # transformers 4 reads vocab_file=; 5 takes vocab= (and ignores vocab_file)
        tokenizer = BertTokenizer(vocab_file=str(root / "vocab.txt"))
        if len(tokenizer) != len(words):
            raise TypeError
    except TypeError:
        tokenizer = BertTokenizer(vocab=str(root / "vocab.txt"))
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
             "projection_dim": 32}
    config = BlipConfig(
        vision_config={**small, "image_size": 32, "patch_size": 8},
        text_config={**small, "vocab_size": len(words), "encoder_hidden_size": 32, "max_position_embeddings": 64,
                     "pad_token_id": 0, "sep_token_id": 3, "eos_token_id": 3, "bos_token_id": 5},
        projection_dim=32,
        image_text_hidden_size=32,
    )
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config).eval()
    out = root / "model"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def test_blip_captions_deterministically(tiny_blip):
    images = [Image.new("RGB", (40, 30), (200, 30, 30)), Image.new("RGB", (32, 32), (20, 40, 220))]
    captioner = make_captioner("blip", model=str(tiny_blip), max_new_tokens=6, batch_size=1)
    assert captioner.model_id == f"{tiny_blip.resolve()}|max_new_tokens=6"
    first = captioner.caption(images)
    assert len(first) == 2 and all(isinstance(c, str) for c in first)
    assert captioner.caption(images) == first
    again = BlipCaptioner(model=str(tiny_blip), max_new_tokens=6)  # fresh load, batch of two
    assert again.caption(images) == first
    prompted = BlipCaptioner(model=str(tiny_blip), prompt="a painting of", max_new_tokens=3)
    assert all(c.startswith("a painting of") for c in prompted.caption(images))


def test_blip_missing_model_offline_teaches(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelNotAvailableError) as err:
        BlipCaptioner(model="nsync-bench-test/no-such-blip").caption([Image.new("RGB", (8, 8))])
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "nsync-bench-test/no-such-blip" in message and "offline" in message
    assert "hf download nsync-bench-test/no-such-blip" in message and "--model DIR" in message
    with pytest.raises(ModelNotAvailableError, match="no such directory") as err:
        BlipCaptioner(model="./no/such/dir").load()
    assert "hf download Salesforce/blip-image-captioning-large --local-dir DIR" in str(err.value)


# --------------------------------------------------------------------------------------- InternVL
@pytest.mark.parametrize(
    ("size", "max_num", "tiles"),
    [
        ((448, 448), 12, 1),  # square: one tile, no thumbnail
        ((896, 448), 12, 3),  # 2x1 grid + thumbnail
        ((448, 1344), 12, 4),  # 1x3 grid + thumbnail
        ((100, 100), 12, 1),  # small square: not blown up into 2x2
        ((1000, 500), 12, 3),  # 2:1 ties with 4:2 etc.; only 1000x500 px -> 2x1
        ((8000, 100), 12, 13),  # very wide: 12x1 (the max) + thumbnail
        ((8000, 100), 6, 7),  # max_num caps the grid
    ],
)
def test_dynamic_tiles(size, max_num, tiles):
    out = dynamic_tiles(Image.new("RGB", size, (10, 20, 30)), max_num=max_num)
    assert len(out) == tiles
    assert all(t.size == (448, 448) and t.mode == "RGB" for t in out)


def test_dynamic_tiles_order_and_thumbnail():
    image = Image.new("RGB", (896, 448), (255, 0, 0))
    image.paste((0, 0, 255), (448, 0, 896, 448))
    left, right, thumb = dynamic_tiles(image)
    assert left.getpixel((224, 224)) == (255, 0, 0) and right.getpixel((224, 224)) == (0, 0, 255)
    assert thumb.getpixel((10, 224))[0] > 200 and thumb.getpixel((437, 224))[2] > 200
    assert len(dynamic_tiles(image, use_thumbnail=False)) == 2
    with pytest.raises(ConfigError):
        dynamic_tiles(image, min_num=3, max_num=2)


def test_internvl_pixel_values_normalised():
    from nsync_bench.data.internvl import pixel_values

    values = pixel_values(Image.new("RGB", (896, 448), (124, 116, 104)))
    assert tuple(values.shape) == (3, 3, 448, 448)
    assert values.abs().max().item() < 0.01  # ImageNet mean colour -> ~0


def test_internvl_requires_trust_remote_code_opt_in(monkeypatch):
    from nsync_bench.data import internvl

    with pytest.raises(ConfigError) as err:
        make_captioner("internvl")
    message = str(err.value)
    assert "--trust-remote-code" in message and "OpenGVLab/InternVL2-2B" in message and "blip" in message
    monkeypatch.setattr(internvl, "check_transformers", lambda: None)  # the version gate has its own test
    captioner = make_captioner("internvl", trust_remote_code=True)  # constructing loads nothing
    # device "auto" resolves now (CPU here): the dtype, and so the captions, depend on it; the revision is pinned
    assert captioner.model_id == "OpenGVLab/InternVL2-2B@e4f6747bd20f139e637642c6a058c6bd00b36919|dtype=float32"
    assert QUESTION.startswith("<image>\nDescribe the visual features of image briefly, with no more than 25 words.")


# -------------------------------------------------------------------------------------------- CLI
def test_cli_keeps_shipped_captions_then_overwrites(tmp_path):
    runner = CliRunner()
    argv = ["data", "captions", STYLE, "--captioner", "template", "--text", "x",
            "--data-root", str(tmp_path)]
    kept = runner.invoke(app, argv, env={"NSYNC_BENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert kept.exit_code == 0, kept.output
    paths = _images(tmp_path / STYLE)
    assert "x" not in {_caption(p) for p in paths}
    assert "--overwrite" in kept.output
    written = runner.invoke(app, [*argv, "--overwrite"], env={"NSYNC_BENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert written.exit_code == 0, written.output
    assert {_caption(p) for p in paths} == {"x"}
    assert json.loads((tmp_path / STYLE / "captions.json").read_text())["written"] == len(paths)


def test_cli_teaching_errors(tmp_path):
    runner = CliRunner()
    base = ["data", "captions", STYLE, "--data-root", str(tmp_path)]
    bad = runner.invoke(app, [*base, "--captioner", "gpt"])
    assert bad.exit_code == 2 and "unknown captioner 'gpt'" in " ".join(bad.output.split())
    remote = runner.invoke(app, [*base, "--captioner", "internvl"])
    assert remote.exit_code == 2 and "--trust-remote-code" in " ".join(remote.output.split())


def test_captions_help_imports_no_heavy_libraries():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom nsync_bench.cli.main import app\n"
        "result = CliRunner().invoke(app, ['data', 'captions', '--help'])\nassert result.exit_code == 0\n"
        "print(sorted(m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("version", "ok"), [("4.46.0", True), ("4.49.2", True), ("4.50.0", False), ("5.25.0", False),
                                             ("4.45.2", False)])
def test_internvl_refuses_transformers_its_remote_code_breaks_on(version, ok):
    from nsync_bench.data.internvl import check_transformers

    if ok:
        check_transformers(version)
        return
    with pytest.raises(ConfigError, match=rf"needs transformers >= 4.46, < 4.50.*has transformers {version}.*"
                                          r"--captioner blip"):
        check_transformers(version)


def test_internvl_on_this_transformers_is_refused_or_allowed_before_any_download():
    from importlib.metadata import version

    from packaging.version import Version

    installed = Version(version("transformers"))
    if Version("4.46") <= installed < Version("4.50"):
        make_captioner("internvl", trust_remote_code=True)
    else:
        with pytest.raises(ConfigError, match=r"transformers >= 4\.46, < 4\.50"):
            make_captioner("internvl", trust_remote_code=True)


def test_blip_defaults_to_auto_device_and_the_pinned_revision(tiny_blip):
    default = BlipCaptioner()  # constructing loads nothing
    assert default.device == "auto"
    assert default.model_id == "Salesforce/blip-image-captioning-large@353689b859fcf0523410b1806dace5fb46ecdf41"
    local = BlipCaptioner(model=str(tiny_blip), max_new_tokens=6)
    local.caption([Image.new("RGB", (32, 32))])
    assert str(local.device) == "cpu"  # "auto" without CUDA
