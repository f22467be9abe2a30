"""Datasets: fetch (download, verify, safe extraction, atomic install), import, validation, list.

Archives are made here and served by a ThreadingHTTPServer on 127.0.0.1 (no network); the real
CycleGAN archives are never contacted.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import subprocess
import sys
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from nsync_bench.cli.main import app
from nsync_bench.data import archive
from nsync_bench.data.fetch import SOURCE_FILE, fetch_style, part_path
from nsync_bench.data.importer import import_style, seeded_split
from nsync_bench.data.styles import ensure_style_data, get_style, list_images
from nsync_bench.data.validate import CACHE_FILE, check_before_run, validate_style
from nsync_bench.download import DownloadError
from nsync_bench.errors import ConfigError, DataError

runner = CliRunner()


# ------------------------------------------------------------------------------------ fixtures
def png(seed: int, size: tuple[int, int] = (64, 64), mode: str = "RGB") -> bytes:
    """A noise image (noise does not compress, so a truncated file really lacks pixel data)."""
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(buffer, "PNG")
    return buffer.getvalue()


N_TRAIN, N_TEST = 5, 3
MEMBERS = {
    **{f"monet2photo/trainA/{i:04d}.png": png(i) for i in range(N_TRAIN)},
    **{f"monet2photo/testA/{i:04d}.png": png(100 + i) for i in range(N_TEST)},
    "monet2photo/trainB/photo.png": png(999),  # domain B (photos): must not be used
    "monet2photo/testA/readme.md": b"not an image",
}


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def make_tar(path: Path, members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


class Handler(SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=N-`` support; ``/flaky/...`` breaks off its first response halfway."""

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        flaky = self.path.startswith("/flaky/")
        path = Path(self.translate_path(self.path.replace("/flaky/", "/", 1)))
        if not path.is_file():
            return super().do_GET()
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match.group(1)) if match else 0
        if start >= len(data) and match:
            return self.send_error(416)
        self.send_response(206 if match else 200)
        if match:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if flaky and not self.server.broken:
            self.server.broken = True
            self.wfile.write(data[start : len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return None
        self.wfile.write(data[start:])
        return None

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(served)))
    srv.requests, srv.broken, srv.dir = [], False, served
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------- fetch
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_good_archive_fetches_verifies_and_extracts(tmp_path, server, kind):
    made = (make_zip if kind == "zip" else make_tar)(server.dir / f"monet2photo.{kind}", MEMBERS)
    root = tmp_path / "data"
    result = fetch_style("monet", root, url=f"{server.base}/{made.name}", sha256=sha(made))
    style_dir = root / "monet"
    assert result.verified and result.images == {"train": N_TRAIN, "test": N_TEST}
    assert sorted(p.name for p in (style_dir / "train").iterdir()) == [f"{i:04d}.png" for i in range(N_TRAIN)]
    assert (style_dir / "test" / "0000.png").read_bytes() == MEMBERS["monet2photo/testA/0000.png"]
    assert not (style_dir / "test" / "readme.md").exists() and "photo.png" not in tree(style_dir)
    source = json.loads((style_dir / SOURCE_FILE).read_text())
    assert source["sha256"] == sha(made) and source["size"] == made.stat().st_size and source["verified"]
    assert source["url"].endswith(made.name) and source["fetched_at"]
    assert sorted(p.name for p in root.iterdir()) == ["monet"]  # no .part, no temporary folder
    assert len(list_images(style_dir, "train")) == N_TRAIN
    again = fetch_style("monet", root, url=f"{server.base}/{made.name}")
    assert again.skipped and len(server.requests) == 1  # present: nothing downloaded


def test_unknown_hash_is_recorded_and_logged(tmp_path, server, caplog):
    made = make_zip(server.dir / "monet2photo.zip", MEMBERS)
    with caplog.at_level(logging.WARNING, logger="nsync_bench.data.fetch"):
        result = fetch_style("monet", tmp_path / "data", url=f"{server.base}/monet2photo.zip")
    assert not result.verified and result.sha256 == sha(made)
    assert sha(made) in caplog.text and "--sha256" in caplog.text
    assert json.loads((tmp_path / "data" / "monet" / SOURCE_FILE).read_text())["verified"] is False


def test_wrong_checksum_fails_and_leaves_nothing(tmp_path, server):
    made = make_zip(server.dir / "monet2photo.zip", MEMBERS)
    root = tmp_path / "data"
    with pytest.raises(DataError) as info:
        fetch_style("monet", root, url=f"{server.base}/monet2photo.zip", sha256="0" * 64)
    assert "0" * 64 in str(info.value) and sha(made) in str(info.value)
    assert list(root.iterdir()) == []


UNSAFE = {
    "zip-dotdot": ("zip", {"monet2photo/trainA/../../../../evil.txt": b"x"}, [], "'..'"),
    "zip-absolute": ("zip", {"/ABS/evil.txt": b"x"}, [], "absolute"),
    "zip-drive": ("zip", {"C:/evil.txt": b"x"}, [], "absolute"),
    "tar-dotdot": ("tar.gz", {"../../evil.txt": b"x"}, [], "'..'"),
    "tar-absolute": ("tar.gz", {"/ABS/evil.txt": b"x"}, [], "absolute"),
    "tar-symlink-escapes": ("tar.gz", {}, [link("monet2photo/trainA/x.png", "../../../../evil.txt")], "escapes"),
    "tar-symlink-absolute": ("tar.gz", {}, [link("monet2photo/out", "/ABS")], "absolute"),
    "tar-write-through-link": ("tar.gz", {"monet2photo/up/evil.txt": b"x"}, [link("monet2photo/up", ".")],
                               "below the link"),
    "tar-hardlink-escapes": ("tar.gz", {}, [link("monet2photo/h.png", "../evil.txt", tarfile.LNKTYPE)], "escapes"),
    "tar-device": ("tar.gz", {}, [link("monet2photo/dev", "", tarfile.CHRTYPE)], "device"),
}


@pytest.mark.parametrize("case", list(UNSAFE))
def test_unsafe_archive_is_refused_and_writes_nothing(tmp_path, server, case):
    kind, bad, extra, message = UNSAFE[case]
    bad = {k.replace("/ABS", str(tmp_path / "abs")): v for k, v in bad.items()}
    extra = [link(i.name, i.linkname.replace("/ABS", str(tmp_path / "abs")), i.type) for i in extra]
    members = {**MEMBERS, **bad}
    name = f"monet2photo.{kind}"
    made = make_zip(server.dir / name, members) if kind == "zip" else make_tar(server.dir / name, members, extra)
    root = tmp_path / "a" / "b" / "data"
    root.mkdir(parents=True)
    before = tree(tmp_path)
    with pytest.raises(DataError, match=message) as info:
        fetch_style("monet", root, url=f"{server.base}/{name}", sha256=sha(made))
    assert re.search(r"evil|/out|/up|h\.png|x\.png|dev", str(info.value))  # names the member
    assert tree(tmp_path) == before  # not in the data root, not beside it, not anywhere under tmp
    assert not (tmp_path / "abs").exists() and not list(tmp_path.rglob("evil.txt"))


def test_links_inside_the_archive_are_allowed(tmp_path):
    made = make_tar(tmp_path / "ok.tar.gz", {"top/a.png": png(1)}, [link("top/b.png", "a.png"),
                                                                     link("top/c.png", "top/a.png", tarfile.LNKTYPE)])
    (tmp_path / "out").mkdir()
    archive.safe_extract(made, tmp_path / "out")
    assert (tmp_path / "out/top/b.png").read_bytes() == (tmp_path / "out/top/c.png").read_bytes() == png(1)


def test_interrupted_download_resumes(tmp_path, server):
    made = make_zip(server.dir / "monet2photo.zip", MEMBERS)
    root, url = tmp_path / "data", f"{server.base}/flaky/monet2photo.zip"
    with pytest.raises(DownloadError, match="resume"):
        fetch_style("monet", root, url=url, sha256=sha(made))
    part = part_path(root, "monet", url)
    half = made.stat().st_size // 2
    assert part.stat().st_size == half and not (root / "monet").exists()
    result = fetch_style("monet", root, url=url, sha256=sha(made))
    assert server.requests[-1] == ("/flaky/monet2photo.zip", f"bytes={half}-")
    assert result.verified and result.images["train"] == N_TRAIN and not part.exists()


def test_archive_style_without_data_teaches_fetch(tmp_path):
    with pytest.raises(DataError, match="nsync-bench data fetch monet"):
        ensure_style_data("monet", tmp_path)
    with pytest.raises(DataError, match="nsync-bench data import ghibli PATH"):
        fetch_style("ghibli", tmp_path)


def test_manifests():
    monet, ghibli = get_style("monet"), get_style("illustrators")
    assert monet.url.endswith("monet2photo.zip") and monet.sha256 is None and monet.size is None
    assert dict(monet.archive_splits) == {"train": "monet2photo/trainA", "test": "monet2photo/testA"}
    assert get_style("vangogh").initializer_token == "painting" and get_style("ghibli").initializer_token == "animation"
    assert ghibli.source == "local" and ghibli.initializer_token == "illustration" and "GANILLA" in ghibli.license
    assert "train/" in ghibli.layout


# ----------------------------------------------------------------------------------- validation
def plant(root: Path) -> Path:
    """A ghibli folder with one of each problem (and good images around them)."""
    style = root / "ghibli"
    for split in ("train", "test"):
        (style / split).mkdir(parents=True)
    for i in range(4):
        (style / "train" / f"good{i}.png").write_bytes(png(i))
        (style / "train" / f"good{i}.txt").write_text(f"caption {i}")
    (style / "test" / "t1.png").write_bytes(png(50))
    (style / "test" / "t2.png").write_bytes(png(51))
    (style / "test" / "t1.txt").write_text("a test caption")
    whole = png(60)
    (style / "train" / "corrupt.png").write_bytes(whole[: len(whole) // 2])
    (style / "train" / "corrupt.txt").write_text("caption of a broken image")
    (style / "train" / "garbage.jpg").write_bytes(b"definitely not a jpeg" * 10)
    (style / "train" / "tiny.png").write_bytes(png(61, (8, 8)))
    (style / "train" / "small.png").write_bytes(png(62, (40, 48)))
    (style / "train" / "gray.png").write_bytes(png(63, mode="L"))
    (style / "train" / "rgba.png").write_bytes(png(64, mode="RGBA"))
    (style / "train" / "good0_copy.png").write_bytes(png(0))  # same bytes as good0 (same split)
    (style / "train" / "leak.png").write_bytes(png(50))  # same bytes as test/t1 (train/test leakage)
    (style / "train" / "notes.tiff").write_bytes(b"x")
    return style


EXPECTED = {
    ("train/corrupt.png", "truncated", "error"),
    ("train/garbage.jpg", "corrupt", "error"),
    ("train/tiny.png", "too_small", "error"),
    ("train/small.png", "too_small", "warning"),
    ("train/gray.png", "mode", "warning"),
    ("train/rgba.png", "mode", "warning"),
    ("train/good0_copy.png", "duplicate", "warning"),
    ("train/leak.png", "duplicate", "error"),
    ("train/notes.tiff", "ignored_file", "warning"),
    ("test/t2.png", "missing_caption", "warning"),
}


def test_validation_names_each_planted_problem(tmp_path):
    plant(tmp_path)
    report = validate_style("ghibli", tmp_path, 64)
    found = {(p.file, p.kind, p.severity) for p in report.problems}
    assert found >= EXPECTED
    assert not {f for f, _, _ in found} & {"train/good0.png", "train/good1.png", "test/t1.png"}
    details = {(p.file, p.kind): p.detail for p in report.problems}
    assert "test/t1.png" in details["train/leak.png", "duplicate"]
    assert "train/good0.png" in details["train/good0_copy.png", "duplicate"]
    assert "transparency" in details["train/rgba.png", "mode"] and "RGB" in details["train/gray.png", "mode"]
    assert report.images == {"train": 12, "test": 2}
    required = validate_style("ghibli", tmp_path, 64, captions="require")
    assert ("test/t2.png", "missing_caption", "error") in {(p.file, p.kind, p.severity) for p in required.problems}


def test_validation_cache_decodes_only_changed_files(tmp_path):
    style = plant(tmp_path)
    assert validate_style("ghibli", tmp_path, 64).decoded == 14
    assert (style / CACHE_FILE).is_file()
    assert validate_style("ghibli", tmp_path, 32).decoded == 0  # another resolution needs no decoding
    (style / "train" / "good1.png").write_bytes(png(77))
    assert validate_style("ghibli", tmp_path, 64).decoded == 1


def test_quarantine_moves_errors_and_deletes_nothing(tmp_path):
    style = plant(tmp_path)
    files_before = {p.name: p.read_bytes() for p in style.rglob("*") if p.is_file() and p.name != CACHE_FILE}
    report = validate_style("ghibli", tmp_path, 64, quarantine=True)
    moved = {p.file for p in report.quarantined}
    assert moved == {"train/corrupt.png", "train/garbage.jpg", "train/tiny.png", "train/leak.png"}
    assert report.errors == [] and report.warnings  # warnings stay, files with them stay
    quarantine = style / "quarantine"
    assert {p.name for p in (quarantine / "train").iterdir()} == {"corrupt.png", "corrupt.txt", "garbage.jpg",
                                                                  "tiny.png", "leak.png"}
    reasons = (quarantine / "REASONS.txt").read_text()
    assert all(name in reasons for name in moved) and "truncated" in reasons
    after = {p.name: p.read_bytes() for p in style.rglob("*") if p.is_file() and p.name not in (CACHE_FILE,
                                                                                                "REASONS.txt")}
    assert after == files_before  # same files, same bytes: moved, not deleted
    assert "leak.png" not in {p.path.name for p in list_images(style, "train")}


def test_check_before_run_stops_on_errors_and_logs_warnings(tmp_path, caplog):
    plant(tmp_path)
    with pytest.raises(DataError) as info:
        check_before_run("ghibli", tmp_path, 64)
    assert "train/corrupt.png" in str(info.value) and "nsync-bench data validate ghibli" in str(info.value)
    validate_style("ghibli", tmp_path, 64, quarantine=True)
    with caplog.at_level(logging.WARNING, logger="nsync_bench.data.validate"):
        check_before_run("ghibli", tmp_path, 64)
    assert "warning(s) in ghibli" in caplog.text


def test_run_refuses_bad_data_before_training(tmp_path):
    """Bad images stop a run in its one pre-training check, before captions or weights are looked at, and
    before any run folder or MLflow run exists."""
    from nsync_bench.config.recipes import resolve_config
    from nsync_bench.pipeline.preflight import check_before_training
    from nsync_bench.pipeline.runner import RunOptions, execute

    plant(tmp_path)
    config = resolve_config(style="ghibli", method="ti", profile="smoke")
    with pytest.raises(DataError, match="--quarantine"):
        check_before_training(config, tmp_path)
    runs = tmp_path / "runs"
    with pytest.raises(DataError, match="--quarantine"):
        execute(config, RunOptions(runs_dir=runs, data_root=tmp_path, track=False))
    assert not any(p.is_dir() and any(p.iterdir()) for p in runs.rglob("seed*"))  # no run folder holds anything


# --------------------------------------------------------------------------------------- import
def flat_folder(path: Path, n: int = 20) -> Path:
    path.mkdir()
    for i in range(n):
        (path / f"img{i:02d}.png").write_bytes(png(200 + i, (32, 32)))
        if i % 2 == 0:
            (path / f"img{i:02d}.txt").write_text(f"caption {i}")
    return path


def test_import_split_is_seeded(tmp_path):
    source = flat_folder(tmp_path / "src")

    def split(root: Path, seed: int) -> list[str]:
        report = import_style("ghibli", source, root, seed=seed)
        assert report.split_by_seed and report.images == {"train": 18, "test": 2}
        return sorted(p.name for p in (root / "ghibli" / "test").glob("*.png"))

    first, again, other = split(tmp_path / "r1", 0), split(tmp_path / "r2", 0), split(tmp_path / "r3", 1)
    assert first == again and first != other
    record = json.loads((tmp_path / "r1" / "ghibli" / "IMPORT.json").read_text())
    assert sorted(record["splits"]["test"]) == first and record["seed"] == 0
    train = tmp_path / "r1" / "ghibli" / "train"
    assert {p.stem for p in train.glob("*.txt")} <= {p.stem for p in train.glob("*.png")}
    assert len(list((tmp_path / "r1" / "ghibli").rglob("*.txt"))) == 10  # every caption came along
    assert seeded_split([f"{i}" for i in range(3)], 0.01, 0)[1]  # at least one test image


def test_import_keeps_existing_splits_and_refuses_overwrite(tmp_path):
    source = tmp_path / "src"
    for split, n in (("trainA", 3), ("testA", 2)):
        (source / split).mkdir(parents=True)
        for i in range(n):
            (source / split / f"{split}{i}.png").write_bytes(png(300 + i + 10 * n))
    report = import_style("illustrators", source, tmp_path / "data")
    assert not report.split_by_seed and report.images == {"train": 3, "test": 2}
    with pytest.raises(DataError, match="--force"):
        import_style("illustrators", source, tmp_path / "data")
    import_style("illustrators", flat_folder(tmp_path / "flat"), tmp_path / "data", force=True)
    assert len(list((tmp_path / "data" / "illustrators" / "train").glob("*.png"))) == 18
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["illustrators"]  # no leftovers
    with pytest.raises(DataError, match="generated in code"):
        import_style("toy-ink", source, tmp_path / "data")
    with pytest.raises(ConfigError, match="test-fraction"):
        import_style("ghibli", source / "trainA", tmp_path / "data", test_fraction=1.5)


# ------------------------------------------------------------------------------------------ CLI
def test_cli_fetch_import_validate_list(tmp_path, server):
    made = make_zip(server.dir / "monet2photo.zip", MEMBERS)
    root = str(tmp_path / "data")
    fetched = runner.invoke(app, ["data", "fetch", "monet", "--url", f"{server.base}/monet2photo.zip",
                                  "--sha256", sha(made), "--data-root", root])
    assert fetched.exit_code == 0, fetched.output
    assert "verified" in fetched.output
    imported = runner.invoke(app, ["data", "import", "ghibli", str(flat_folder(tmp_path / "src")), "--seed", "3",
                                   "--data-root", root])
    assert imported.exit_code == 0, imported.output
    listing = runner.invoke(app, ["data", "list", "--data-root", root])
    assert listing.exit_code == 0, listing.output
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in listing.output.splitlines() if line.startswith("│")}
    assert rows["monet"][:4] == ["archive", str(N_TRAIN), str(N_TEST), "no"]
    assert rows["ghibli"][:4] == ["local", "18", "2", "partial"]
    assert rows["vangogh"][1] == "-" and "nsync-bench data fetch vangogh" in listing.output
    validated = runner.invoke(app, ["data", "validate", "ghibli", "--resolution", "32", "--data-root", root])
    assert validated.exit_code == 0, validated.output
    plant(tmp_path / "bad")
    failed = runner.invoke(app, ["data", "validate", "ghibli", "--profile", "smoke", "--data-root",
                                 str(tmp_path / "bad")])
    assert failed.exit_code == 1 and "corrupt.png" in failed.output and "--quarantine" in failed.output
    fixed = runner.invoke(app, ["data", "validate", "ghibli", "--profile", "smoke", "--quarantine",
                                "--data-root", str(tmp_path / "bad")])
    assert fixed.exit_code == 0 and "moved to quarantine" in fixed.output


def test_cli_wrong_checksum_is_a_teaching_error(tmp_path, server):
    make_zip(server.dir / "monet2photo.zip", MEMBERS)
    result = runner.invoke(app, ["data", "fetch", "monet", "--url", f"{server.base}/monet2photo.zip",
                                 "--sha256", "1" * 64, "--data-root", str(tmp_path / "data")])
    assert result.exit_code == 2 and "checksum mismatch" in result.output


@pytest.mark.parametrize("verb", ["fetch", "import", "validate", "list"])
def test_help_of_data_verbs_imports_no_torch(verb):
    argv = ["data", verb, "--help"]
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom nsync_bench.cli.main import app\n"
        f"result = CliRunner().invoke(app, {argv!r})\nassert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_large_images_are_a_validation_row_not_a_raw_warning(tmp_path, monkeypatch):
    import io
    import warnings

    from nsync_bench.data.pixels import load_rgb

    style = tmp_path / "ghibli"
    for split in ("train", "test"):
        (style / split).mkdir(parents=True)
        for k in range(2):
            buffer = io.BytesIO()
            Image.fromarray(np.full((40, 40, 3), 30 * k, dtype=np.uint8)).save(buffer, format="PNG")
            (style / split / f"{split}{k}.png").write_bytes(buffer.getvalue())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 pixels: above the warning threshold
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any raw warning fails the test
        report = validate_style("ghibli", tmp_path, 32)
        load_rgb(style / "train" / "train0.png")
    assert {p.kind for p in report.warnings} >= {"large_image"}
