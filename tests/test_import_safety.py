"""Issue 20, item 6: import copies images, not whatever a name points at; captions decode or are refused.

Before: ``data import`` followed ``x.png -> /etc/passwd`` and copied that file into the dataset; a latin-1
caption passed import and validate and then crashed the run ("unexpected UnicodeDecodeError"); a caption
with a NUL byte was accepted.
"""

import shutil

import pytest
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.data.styles import ensure_style_data, list_images
from nsync_bench.data.validate import validate_style
from nsync_bench.errors import DataError


@pytest.fixture
def source(tmp_path, data_root):
    """A folder with train/ and test/ splits of real toy images and their UTF-8 captions."""
    toy = ensure_style_data("toy-ink", data_root)
    folder = tmp_path / "src"
    for split, count in (("train", 6), ("test", 2)):
        (folder / split).mkdir(parents=True)
        for image in sorted((toy / split).glob("*.png"))[:count]:
            shutil.copy(image, folder / split / image.name)
            shutil.copy(image.with_suffix(".txt"), folder / split / f"{image.stem}.txt")
    return folder


def _import(source, root, *extra):
    return CliRunner().invoke(app, ["data", "import", "ghibli", str(source), "--data-root", str(root), *extra])


def test_a_symlink_is_skipped_and_said_so_never_followed(tmp_path, source):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (source / "train" / "x.png").symlink_to(secret)
    result = _import(source, tmp_path / "root")
    assert result.exit_code == 0, result.output
    assert "skipped 1 symbolic link" in " ".join(result.output.split())
    imported = tmp_path / "root" / "ghibli" / "train"
    assert not (imported / "x.png").exists()
    assert all(b"root:x:0" not in p.read_bytes() for p in imported.iterdir())


def test_a_latin1_caption_is_refused_naming_the_file_or_decoded_when_told(tmp_path, source):
    caption = sorted((source / "train").glob("*.txt"))[0]
    caption.write_bytes("un café au bord du lac".encode("latin-1"))
    refused = _import(source, tmp_path / "root")
    message = " ".join(refused.output.split())
    assert refused.exit_code == 2, refused.output
    assert caption.name in message and "not valid utf-8" in message and "--caption-encoding" in message
    assert "unexpected" not in message and not (tmp_path / "root" / "ghibli").exists()
    accepted = _import(source, tmp_path / "root", "--caption-encoding", "latin-1")
    assert accepted.exit_code == 0, accepted.output
    stored = tmp_path / "root" / "ghibli" / "train" / caption.name
    assert stored.read_text(encoding="utf-8").strip() == "un café au bord du lac"  # stored as UTF-8


def test_a_caption_with_a_nul_byte_is_refused(tmp_path, source):
    caption = sorted((source / "test").glob("*.txt"))[0]
    caption.write_bytes(b"a house\x00by a lake")
    result = _import(source, tmp_path / "root")
    assert result.exit_code == 2, result.output
    assert caption.name in result.output and "control character" in " ".join(result.output.split())


def test_every_copied_image_is_validated(tmp_path, source):
    image = sorted((source / "train").glob("*.png"))[2]
    image.write_bytes(image.read_bytes()[:200])
    result = _import(source, tmp_path / "root")
    message = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert image.name in message and "truncated" in message and "Nothing was imported" in message
    assert not (tmp_path / "root" / "ghibli").exists()


def test_a_bad_caption_already_in_a_style_is_named_by_validate_and_by_the_run(tmp_path, source):
    assert _import(source, tmp_path / "root").exit_code == 0
    caption = sorted((tmp_path / "root" / "ghibli" / "train").glob("*.txt"))[1]
    caption.write_bytes("caf\xe9".encode("latin-1"))  # edited by hand after the import
    report = validate_style("ghibli", tmp_path / "root", 32)
    assert [(p.file, p.kind) for p in report.errors] == [(f"train/{caption.name}", "bad_caption")]
    with pytest.raises(DataError, match=rf"{caption.name} is not valid utf-8.*--caption-encoding"):
        list_images(tmp_path / "root" / "ghibli", "train")
    ran = CliRunner().invoke(app, ["run", "--style", "ghibli", "--method", "ti", "--data-root", str(tmp_path / "root"),
                                   "--runs-dir", str(tmp_path / "runs"), "--no-track"])
    message = " ".join(ran.output.split())
    assert ran.exit_code == 2 and caption.name in message and "not valid utf-8" in message, ran.output
    assert "error: unexpected" not in message
