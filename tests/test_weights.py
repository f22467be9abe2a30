"""Metric weights registry: teaching errors, checksum checks, sidecar cache, resumable fetch.

Downloads are served by a local ThreadingHTTPServer on 127.0.0.1 (no network).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nsync_bench.errors import ModelNotAvailableError, UnknownNameError
from nsync_bench.metrics import weights
from nsync_bench.metrics.weights import ChecksumError

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MB: more than one download chunk
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
NAME = "inception-fid"  # a file entry with only a prefix known


class RangeHandler(SimpleHTTPRequestHandler):
    """Serves files from the server's directory and honours ``Range: bytes=N-`` with 206."""

    def do_GET(self):
        self.server.requests.append(dict(self.headers))
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not match or not path.is_file():
            return super().do_GET()
        data = path.read_bytes()
        start = int(match.group(1))
        if start >= len(data):
            self.send_error(416)
            return None
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])
        return None

    def log_message(self, *args):
        pass


class PlainHandler(SimpleHTTPRequestHandler):
    """Ignores Range (answers 200 with the whole file), like many simple servers."""

    def do_GET(self):
        self.server.requests.append(dict(self.headers))
        return super().do_GET()

    def log_message(self, *args):
        pass


def _serve(directory: Path, handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(directory)))
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


def _serving(folder, handler):
    """Serve PAYLOAD as ``weights.bin`` from ``folder`` on 127.0.0.1 until the test ends."""
    folder.mkdir()
    (folder / "weights.bin").write_bytes(PAYLOAD)
    srv, thread = _serve(folder, handler)
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/weights.bin"
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


@pytest.fixture
def server(tmp_path):
    yield from _serving(tmp_path / "served", RangeHandler)


@pytest.fixture
def plain_server(tmp_path):
    yield from _serving(tmp_path / "plain", PlainHandler)


@pytest.fixture
def pinned(monkeypatch):
    """Register ``NAME`` with the payload's full sha256 (as if the registry knew it)."""
    entry = dataclasses.replace(weights.REGISTRY[NAME], sha256=PAYLOAD_SHA, sha256_prefix=None)
    monkeypatch.setitem(weights.REGISTRY, NAME, entry)
    return entry


def test_weights_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("NSYNC_BENCH_WEIGHTS_DIR", str(tmp_path / "env"))
    assert weights.weights_dir() == (tmp_path / "env").resolve()
    assert weights.weights_dir(tmp_path / "arg") == (tmp_path / "arg").resolve()
    monkeypatch.delenv("NSYNC_BENCH_WEIGHTS_DIR")
    monkeypatch.setenv("NSYNC_BENCH_CACHE_DIR", str(tmp_path / "cache"))
    assert weights.weights_dir() == (tmp_path / "cache").resolve() / "weights"
    assert weights.weight_path("csd-vit-l", tmp_path) == tmp_path.resolve() / "pytorch_model.bin"


def test_registry_entries():
    csd = weights.REGISTRY["csd-vit-l"]
    assert csd.sha256 == "40e92fad63a361b8136100cd234c42d401ef9b34ff1748234318929ebcc7e7a1"
    assert csd.size == 2_438_228_893
    assert weights.REGISTRY["inception-fid"].sha256_prefix == "6726825d"
    assert weights.REGISTRY["inception-torchvision"].sha256_prefix == "0cc3c7bd"
    assert weights.REGISTRY["inception-clean"].sha256 is None
    hub = weights.REGISTRY["clip-vit-l-14-336"]
    assert hub.kind == "hub" and hub.repo_id == "openai/clip-vit-large-patch14-336"
    with pytest.raises(UnknownNameError, match="csd-vit-l"):
        weights.get_entry("csd-vit")


def test_require_missing_file_teaches(tmp_path):
    with pytest.raises(ModelNotAvailableError) as info:
        weights.require_weight("csd-vit-l", tmp_path)
    message = str(info.value)
    assert weights.REGISTRY["csd-vit-l"].url in message
    assert str(tmp_path.resolve() / "pytorch_model.bin") in message
    assert "nsync-bench weights fetch csd-vit-l" in message


def test_require_missing_hub_snapshot_teaches(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="nsync-bench weights fetch clip-vit-l-14-336"):
        weights.require_weight("clip-vit-l-14-336", tmp_path)


def test_require_checks_prefix_and_full_hash(tmp_path, pinned):
    path = weights.weight_path(NAME, tmp_path)
    path.write_bytes(PAYLOAD)
    assert weights.require_weight(NAME, tmp_path) == path
    path.write_bytes(PAYLOAD + b"x")
    with pytest.raises(ChecksumError) as info:
        weights.require_weight(NAME, tmp_path)
    assert PAYLOAD_SHA in str(info.value) and hashlib.sha256(PAYLOAD + b"x").hexdigest() in str(info.value)


def test_accepting_a_hash_with_fetch_sha256_is_remembered(tmp_path, pinned):
    """The CSD hash is unverified: a user can accept the file they have, until it changes."""
    path = weights.weight_path(NAME, tmp_path)
    path.write_bytes(b"other weights")
    other = hashlib.sha256(b"other weights").hexdigest()
    with pytest.raises(ChecksumError, match=f"--sha256 {other}"):
        weights.require_weight(NAME, tmp_path)
    assert weights.fetch(NAME, tmp_path, sha256=other) == path  # present: nothing downloaded
    assert weights.require_weight(NAME, tmp_path) == path
    path.write_bytes(b"other weights, changed")
    with pytest.raises(ChecksumError):
        weights.require_weight(NAME, tmp_path)


def test_unverified_registry_hash_says_so(tmp_path):
    path = weights.weight_path("csd-vit-l", tmp_path)
    path.write_bytes(b"not csd")
    with pytest.raises(ChecksumError, match="unverified"):
        weights.require_weight("csd-vit-l", tmp_path)


def test_require_prefix_only(tmp_path):
    path = weights.weight_path(NAME, tmp_path)
    path.write_bytes(PAYLOAD)  # its sha256 does not start with 6726825d
    with pytest.raises(ChecksumError, match="6726825d"):
        weights.require_weight(NAME, tmp_path)


def test_sidecar_avoids_rehash_until_file_changes(tmp_path, monkeypatch):
    path = tmp_path / "file.bin"
    path.write_bytes(PAYLOAD)
    assert weights.cached_sha256(path) == PAYLOAD_SHA
    assert (tmp_path / "file.bin.sha256").is_file()
    calls = []
    real = weights.file_sha256
    monkeypatch.setattr(weights, "file_sha256", lambda p: calls.append(p) or real(p))
    assert weights.cached_sha256(path) == PAYLOAD_SHA
    assert calls == []
    path.write_bytes(b"changed")
    os.utime(path, ns=(1, 1))
    assert weights.cached_sha256(path) == hashlib.sha256(b"changed").hexdigest()
    assert len(calls) == 1


def test_fetch_good_file(tmp_path, server, pinned):
    path = weights.fetch(NAME, tmp_path / "w", url=server.url)
    assert path.read_bytes() == PAYLOAD
    assert not path.with_name(path.name + ".part").exists()
    assert weights.require_weight(NAME, tmp_path / "w") == path
    assert weights.fetch(NAME, tmp_path / "w", url=server.url) == path  # present: no second download
    assert len(server.requests) == 1


def test_fetch_sha256_override(tmp_path, server):
    path = weights.fetch(NAME, tmp_path, url=server.url, sha256=PAYLOAD_SHA)
    assert weights.file_sha256(path) == PAYLOAD_SHA


def test_fetch_wrong_checksum_leaves_nothing(tmp_path, server):
    with pytest.raises(ChecksumError) as info:
        weights.fetch(NAME, tmp_path / "w", url=server.url, sha256="0" * 64)
    assert "0" * 64 in str(info.value) and PAYLOAD_SHA in str(info.value)
    assert list((tmp_path / "w").iterdir()) == []  # neither the file nor its .part


def test_fetch_resumes_with_range(tmp_path, server, pinned):
    path = weights.weight_path(NAME, tmp_path)
    half = len(PAYLOAD) // 2
    path.with_name(path.name + ".part").write_bytes(PAYLOAD[:half])
    progress = RecordingProgress()
    weights.fetch(NAME, tmp_path, url=server.url, progress=progress)
    assert server.requests[-1].get("Range") == f"bytes={half}-"
    assert weights.file_sha256(path) == PAYLOAD_SHA
    assert progress.started == (len(PAYLOAD), half) and progress.advanced == len(PAYLOAD) - half


def test_fetch_restarts_when_server_ignores_range(tmp_path, plain_server, pinned):
    path = weights.weight_path(NAME, tmp_path)
    path.with_name(path.name + ".part").write_bytes(b"garbage that is not the payload")
    weights.fetch(NAME, tmp_path, url=plain_server.url)
    assert plain_server.requests[-1].get("Range") is not None
    assert weights.file_sha256(path) == PAYLOAD_SHA


def test_fetch_unknown_checksum_logs_the_hash(tmp_path, server, caplog):
    with caplog.at_level(logging.WARNING, logger="nsync_bench.metrics.weights"):
        path = weights.fetch("inception-clean", tmp_path, url=server.url)
    assert path.name == "inception-2015-12-05.pt"
    assert PAYLOAD_SHA in caplog.text


def test_fetch_unreachable_is_a_teaching_error(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="failed"):
        weights.fetch(NAME, tmp_path, url="http://127.0.0.1:9/nothing.bin", timeout=2)


def test_fetch_hub_snapshot(tmp_path, monkeypatch):
    import huggingface_hub

    seen = {}

    def fake_snapshot_download(repo_id, *, local_dir, allow_patterns, revision=None):
        seen.update(repo_id=repo_id, patterns=allow_patterns, revision=revision)
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        (Path(local_dir) / "config.json").write_text("{}")
        (Path(local_dir) / "model.safetensors").write_bytes(b"x")
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    path = weights.fetch("clip-vit-l-14-336", tmp_path)
    assert path == tmp_path.resolve() / "clip-vit-large-patch14-336"
    assert seen["repo_id"] == "openai/clip-vit-large-patch14-336"
    assert "model.safetensors" in seen["patterns"] and not any(p.endswith(".bin") for p in seen["patterns"])
    assert seen["revision"] == "ce19dc912ca5cd21c8a653c79e251e808ccabcd1"  # pinned, not whatever main holds


class RecordingProgress:
    def __init__(self):
        self.started, self.advanced, self.stopped = None, 0, False

    def start(self, description, total, completed=0):
        self.started = (total, completed)

    def advance(self, steps=1, **fields):
        self.advanced += steps

    def stop(self):
        self.stopped = True


def test_no_unsafe_torch_load_in_package():
    """docs/architecture.md: nothing is loaded with pickle; every torch.load passes weights_only=True."""
    root = Path(weights.__file__).resolve().parents[1]
    offenders = []
    for source in root.rglob("*.py"):
        text = source.read_text()
        if "weights_only=False" in text:
            offenders.append(f"{source}: weights_only=False")
        for match in re.finditer(r"torch\.load\(", text):
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):  # the balanced call text
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            call = text[match.start() : end + 1]
            if "weights_only=True" not in call:
                offenders.append(f"{source}: {call}")
    assert offenders == []
