"""nsync_bench.io: atomic writes leave the old file or the new one, never a partial file or a temp file."""

import json
import os

import pytest

from nsync_bench.io import atomic_open, atomic_write_bytes, atomic_write_json, atomic_write_text


def test_writes_create_folders_and_replace_whole_files(tmp_path):
    target = tmp_path / "a" / "b" / "f.json"
    atomic_write_json(target, {"x": [1, 2]}, indent=1, sort_keys=True)
    assert target.read_text() == json.dumps({"x": [1, 2]}, indent=1, sort_keys=True)
    atomic_write_text(target, "héllo")
    assert target.read_text(encoding="utf-8") == "héllo"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert os.listdir(target.parent) == ["f.json"]  # no temporary file left behind


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "state.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target, "w", encoding="utf-8") as handle:
        handle.write("half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]
    with pytest.raises(TypeError):  # not serialisable: nothing written
        atomic_write_json(target, {"x": object()})
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_the_temp_file_is_in_the_targets_folder_and_fsynced(tmp_path, monkeypatch):
    synced, replaced = [], []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append((a, b)), real_replace(a, b))[1])
    target = tmp_path / "x.bin"
    atomic_write_bytes(target, b"data")
    assert len(synced) == 1
    (source, dest), = replaced
    assert os.path.dirname(source) == str(tmp_path) and str(dest) == str(target)


def test_only_whole_file_write_modes(tmp_path):
    with pytest.raises(ValueError, match="mode"), atomic_open(tmp_path / "f", "a"):
        pass
