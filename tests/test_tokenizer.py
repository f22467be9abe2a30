"""The offline CLIP tokenizer matches open_clip's, and the 2-token trap is caught."""

from __future__ import annotations

import json

import pytest

from nsync_bench.errors import ModelNotAvailableError
from nsync_bench.models import tokenizer as tok_mod
from nsync_bench.models.tokenizer import (
    CLIP_VOCAB_SIZE,
    check_tokenizer,
    clip_tokenizer_dir,
    load_clip_tokenizer,
)

TEXTS = [
    "a photo of sks dog",
    "Hello, World!!! (really?) -- yes; [ok] {fine} <tag> #1 @me",
    "MiXeD CaSe   and\ttabs\nand newlines",
    "a café in Zürich, naïve résumé, 日本語 😀",
    "123 apples, 4.56 bananas and 7890 pears in 2024",
    "it's we're they've I'm we'll he'd",
    "a painting in the style of <nsync-style>",
]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return clip_tokenizer_dir(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def tokenizer(tok_dir):
    return load_clip_tokenizer(tok_dir)


def test_vocabulary_size_and_special_tokens(tokenizer):
    assert len(tokenizer) == CLIP_VOCAB_SIZE
    assert tokenizer.bos_token == "<|startoftext|>"
    assert tokenizer.eos_token == tokenizer.pad_token == tokenizer.unk_token == "<|endoftext|>"
    assert tokenizer.bos_token_id == 49406
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == 49407
    assert tokenizer.model_max_length == 77


def test_files_written(tok_dir):
    assert tok_dir.name.startswith("clip-tokenizer-")
    merges = (tok_dir / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0] == "#version: 0.2"
    assert len(merges) - 1 == 49152 - 256 - 2


@pytest.mark.parametrize("text", TEXTS)
def test_ids_match_open_clip(tokenizer, text):
    from open_clip.tokenizer import SimpleTokenizer

    assert tokenizer(text, add_special_tokens=False).input_ids == SimpleTokenizer().encode(text)


def test_sd_style_padded_encoding(tokenizer):
    text = "a painting of a cat"
    n = len(tokenizer(text, add_special_tokens=False).input_ids)
    ids = tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids
    assert len(ids) == 77
    assert ids[0] == 49406
    assert ids[n + 1] == 49407
    assert ids[n + 1 :] == [49407] * (77 - n - 1)
    long_ids = tokenizer("cat " * 200, padding="max_length", max_length=77, truncation=True).input_ids
    assert len(long_ids) == 77 and long_ids[0] == 49406 and long_ids[-1] == 49407


def _two_token_tokenizer(cls, folder):
    (folder / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return cls(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"))


def test_check_tokenizer_catches_two_token_placeholder(tmp_path):
    from transformers import CLIPTokenizer

    try:
        fake = CLIPTokenizer()  # what from_pretrained(<unreachable id>) silently returns in transformers 5
    except TypeError:  # transformers 4 needs files: a two-entry vocabulary is as wrong
        fake = _two_token_tokenizer(CLIPTokenizer, tmp_path)
    assert len(fake) < 1000
    with pytest.raises(ModelNotAvailableError, match="some/unreachable-id") as info:
        check_tokenizer(fake, "some/unreachable-id")
    assert f"has {len(fake)} tokens" in str(info.value)
    with pytest.raises(ModelNotAvailableError):
        check_tokenizer(fake, "x", expected_size=None)


def test_check_tokenizer_size(tokenizer):
    check_tokenizer(tokenizer, "ok")
    check_tokenizer(tokenizer, "ok", expected_size=None)
    with pytest.raises(ModelNotAvailableError, match="expected 50000"):
        check_tokenizer(tokenizer, "src", expected_size=50000)


def test_cache_reused(tmp_path, monkeypatch):
    first = clip_tokenizer_dir(tmp_path)
    mtimes = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}

    def fail(*args, **kwargs):
        raise AssertionError("cache was rewritten")

    monkeypatch.setattr(tok_mod, "_write_tokenizer_files", fail)
    second = clip_tokenizer_dir(tmp_path)
    assert second == first
    assert {p.name: p.stat().st_mtime_ns for p in second.iterdir()} == mtimes
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temp dirs left behind


def test_partial_cache_is_rebuilt(tmp_path):
    target = clip_tokenizer_dir(tmp_path)
    (target / "merges.txt").unlink()
    assert clip_tokenizer_dir(tmp_path) == target
    assert (target / "merges.txt").is_file()


def test_default_load_returns_independent_copies(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a = load_clip_tokenizer()
    b = load_clip_tokenizer()
    a.add_tokens(["<sks>"])
    assert len(a) == CLIP_VOCAB_SIZE + 1
    assert len(b) == CLIP_VOCAB_SIZE


def test_missing_directory_raises(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="no CLIP tokenizer"):
        load_clip_tokenizer(tmp_path)


def test_stale_config_is_refreshed(tmp_path):
    target = clip_tokenizer_dir(tmp_path)
    vocab_mtime = (target / "vocab.json").stat().st_mtime_ns
    (target / "tokenizer_config.json").write_text('{"model_max_length": 5}')
    clip_tokenizer_dir(tmp_path)
    assert load_clip_tokenizer(target).model_max_length == 77
    assert (target / "vocab.json").stat().st_mtime_ns == vocab_mtime
