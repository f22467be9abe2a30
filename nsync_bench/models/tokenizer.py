"""The real 49,408-token CLIP BPE tokenizer, built offline from the file open_clip ships.

Stable Diffusion 1.x/2.x use OpenAI's CLIP BPE vocabulary. Rather than download it from the hub,
we rebuild ``vocab.json`` + ``merges.txt`` from ``open_clip/bpe_simple_vocab_16e6.txt.gz`` exactly
as open_clip's ``SimpleTokenizer`` does, so the ``smoke`` profile tokenizes prompts like SD does
with no network. :func:`check_tokenizer` guards against a trap in transformers 5: a
``CLIPTokenizer`` built from a missing id or from ``vocab_file=`` silently has only 2 tokens.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nsync_bench.errors import ModelNotAvailableError
from nsync_bench.io import atomic_write_text, file_sha256

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

logger = logging.getLogger(__name__)

CLIP_VOCAB_SIZE = 49408
BOS_TOKEN = "<|startoftext|>"  # noqa: S105 (a token, not a password)
EOS_TOKEN = "<|endoftext|>"  # noqa: S105
MODEL_MAX_LENGTH = 77
BPE_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")


def _bpe_gz_path() -> Path:
    """Locate open_clip's BPE file without importing open_clip (its import is slow)."""
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / BPE_FILENAME
        if candidate.is_file():
            return candidate
    raise ModelNotAvailableError(
        f"cannot build the CLIP tokenizer offline: {BPE_FILENAME} not found in the open_clip package "
        f"(searched: {locations or 'open_clip is not installed'}). "
        "Fix: pip install open_clip_torch, or pass a tokenizer directory explicitly."
    )


def _bytes_to_unicode() -> list[str]:
    """The byte -> printable-unicode table of GPT-2/CLIP BPE, in open_clip's order."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return [chr(c) for c in cs]


def _vocab_and_merges(gz_path: Path) -> tuple[dict[str, int], list[str]]:
    """Reproduce ``open_clip.tokenizer.SimpleTokenizer``'s vocabulary construction exactly."""
    with gzip.open(gz_path) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merge_lines = lines[1 : 49152 - 256 - 2 + 1]
    merges = [tuple(line.split()) for line in merge_lines]
    vocab = _bytes_to_unicode()
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab.extend("".join(merge) for merge in merges)
    vocab.extend([BOS_TOKEN, EOS_TOKEN])
    encoder = {token: i for i, token in enumerate(vocab)}
    if len(encoder) != CLIP_VOCAB_SIZE:
        raise ModelNotAvailableError(
            f"{gz_path} produced a {len(encoder)}-token vocabulary, expected {CLIP_VOCAB_SIZE}. "
            "Fix: reinstall open_clip_torch (the BPE file looks corrupt or changed)."
        )
    return encoder, [" ".join(merge) for merge in merges]


def _tokenizer_config() -> dict[str, Any]:
    """The settings of SD 1.5's ``tokenizer/tokenizer_config.json``."""
    return {
        "tokenizer_class": "CLIPTokenizer",
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "unk_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "model_max_length": MODEL_MAX_LENGTH,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
        # transformers 5 warns that this cleanup corrupts BPE output; SD never decodes anyway.
        "clean_up_tokenization_spaces": False,
    }


def _config_files() -> dict[str, str]:
    """The small JSON files, as text: compared on reuse so a changed config reaches old caches."""
    special = {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "unk_token": EOS_TOKEN, "pad_token": EOS_TOKEN}
    return {
        "tokenizer_config.json": json.dumps(_tokenizer_config(), indent=2),
        "special_tokens_map.json": json.dumps(special, indent=2),
    }


def _write_tokenizer_files(gz_path: Path, target: Path) -> None:
    """Write the four tokenizer files into ``target`` atomically (temp dir + ``os.replace``)."""
    encoder, merges = _vocab_and_merges(gz_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        (tmp / "vocab.json").write_text(json.dumps(encoder, ensure_ascii=False), encoding="utf-8")
        (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        for name, text in _config_files().items():
            (tmp / name).write_text(text, encoding="utf-8")
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process won the race and filled ``target`` first; theirs is identical.
            if not all((target / name).is_file() for name in _FILES):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _refresh_config_files(target: Path) -> None:
    """Atomically rewrite config files that differ from the current ones (written by older code)."""
    for name, text in _config_files().items():
        path = target / name
        if path.read_text(encoding="utf-8") != text:
            logger.info("updating stale %s", path)
            atomic_write_text(path, text)


def clip_tokenizer_dir(cache_root: Path | None = None) -> Path:
    """Return a directory holding the CLIP tokenizer files, writing them on first use.

    The directory name carries the BPE file's hash, so a changed open_clip file gets a fresh cache.
    """
    gz_path = _bpe_gz_path()
    if cache_root is None:
        import platformdirs

        cache_root = Path(platformdirs.user_cache_dir("nsync-bench"))
    target = Path(cache_root) / f"clip-tokenizer-{file_sha256(gz_path)[:12]}"
    if not all((target / name).is_file() for name in _FILES):
        logger.info("writing the CLIP tokenizer from %s to %s", gz_path, target)
        if target.exists():  # a partial directory from an older, non-atomic writer
            shutil.rmtree(target, ignore_errors=True)
        _write_tokenizer_files(gz_path, target)
    else:
        _refresh_config_files(target)
    return target


def load_clip_tokenizer(path: str | Path | None = None) -> CLIPTokenizer:
    """Load a ``CLIPTokenizer`` from ``path`` (None: the offline-built one) and check its size.

    Each call returns a fresh tokenizer (about 0.1 s): textual inversion adds tokens to its own.
    """
    from transformers import CLIPTokenizer

    if path is None:
        directory, expected = clip_tokenizer_dir(), CLIP_VOCAB_SIZE
    else:
        directory, expected = Path(path), None
        if not any((directory / name).is_file() for name in ("tokenizer.json", "vocab.json")):
            raise ModelNotAvailableError(
                f"no CLIP tokenizer at {str(directory)!r} (neither tokenizer.json nor vocab.json there). "
                "Fix: pass a directory holding vocab.json and merges.txt (or tokenizer.json), "
                "or None for the built-in one."
            )
    tokenizer = CLIPTokenizer.from_pretrained(str(directory))
    check_tokenizer(tokenizer, str(directory), expected_size=expected)
    return tokenizer


def check_tokenizer(tokenizer: Any, source: str, expected_size: int | None = CLIP_VOCAB_SIZE) -> None:
    """Raise if ``tokenizer`` is the silent 2-token placeholder or has an unexpected size.

    transformers 5 turns ``CLIPTokenizer.from_pretrained(<unreachable id>)`` and
    ``CLIPTokenizer(vocab_file=...)`` into a tokenizer with only its special tokens, instead of
    failing; training against it would quietly map every prompt to ``<|endoftext|>``.
    """
    size = len(tokenizer)
    if size < 1000 or (expected_size is not None and size != expected_size):
        wanted = f"{expected_size}" if expected_size is not None else "a real vocabulary (>= 1000)"
        raise ModelNotAvailableError(
            f"the tokenizer loaded from {source!r} has {size} tokens, expected {wanted}. "
            "This usually means its vocab.json/merges.txt were not found and transformers silently "
            "built a placeholder. Fix: point at a directory (or cached hub snapshot) containing "
            "tokenizer/vocab.json and tokenizer/merges.txt, or use "
            "nsync_bench.models.tokenizer.load_clip_tokenizer() for the offline CLIP tokenizer."
        )
