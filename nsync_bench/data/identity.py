"""The data identity of a run: content digests of everything it consumes, part of its run key.

A run trains on the train split's images and captions, is scored against the test split's images
(prompted by their captions), and NSYNC methods also consume a negative set. Changing any of them
must change the run key, or a rerun would return the stale result of other data. Per split:

    {"name": "toy-pastel/train", "source": "<path>", "count": 32,
     "images": <sha256 over sorted (file name, content sha256)>,
     "captions": <sha256 over sorted (stem, caption text)> | None,
     "captioner": "files" | "internvl:OpenGVLab/InternVL2-2B" | ...}

Image hashes are cached in ``<cache_dir>/digests.json`` keyed by (absolute path, size, mtime_ns),
so a large dataset is hashed once, not on every call. Captions are small and read every time.
A negative set we render ourselves is a function of the config and the train captions (both in
the run key), so only a user-supplied ``nsync.negatives_dir`` adds its content digest to the key;
the rendered set's digest is recorded after rendering (:func:`files_identity`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nsync_bench.data.styles import IMAGE_SUFFIXES, StyleData, read_caption
from nsync_bench.io import atomic_write_json, file_sha256

log = logging.getLogger(__name__)

DIGEST_CACHE = "digests.json"
# Which captioner wrote each caption file: "<split>/<stem>" -> {captioner, model_id, sha256 of text};
# written by `data captions`, beside the style's captions.json.
CAPTION_MANIFEST = "captions-manifest.json"
UNKNOWN_CAPTIONER = "files"  # captions no captioner of ours wrote: the user's own (or shipped) files


def _sha(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class DigestCache:
    """sha256 of files keyed by (path, size, mtime_ns); one JSON file, replaced atomically.

    Concurrent writers can lose each other's new entries (the last replace wins); that only
    costs a rehash later, never a wrong digest, since a changed file changes its size or mtime.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.entries: dict[str, list] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def digest(self, file: Path) -> str:
        stat = file.stat()
        key = str(file.resolve())
        entry = self.entries.get(key)
        if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            return entry[2]
        sha = file_sha256(file)
        self.entries[key] = [stat.st_size, stat.st_mtime_ns, sha]
        self.dirty = True
        return sha

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            atomic_write_json(self.path, self.entries)
            self.dirty = False
        except OSError as err:  # a read-only cache costs speed, not correctness
            log.warning("could not write the digest cache %s (%s); images will be hashed again", self.path, err)


def _cache() -> DigestCache:
    from nsync_bench.paths import cache_dir

    return DigestCache(cache_dir() / DIGEST_CACHE)


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def files_identity(name: str, files: Iterable[Path], source: str, cache: DigestCache | None = None) -> dict[str, Any]:
    """Identity of a set of image files (no captions): name, source, count and content digest."""
    own = cache is None
    cache = cache or _cache()
    files = sorted(files, key=lambda p: p.name)
    digest = _sha([[p.name, cache.digest(p)] for p in files])
    if own:
        cache.save()
    return {"name": name, "source": source, "count": len(files), "images": digest}


def read_caption_manifest(style_dir: Path) -> dict[str, dict[str, str]]:
    try:
        return json.loads((style_dir / CAPTION_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def record_captions(style_dir: Path, written: dict[Path, str], captioner: str, model_id: str) -> None:
    """Note in the style's caption manifest that ``captioner``/``model_id`` wrote these captions."""
    manifest = read_caption_manifest(style_dir)
    for image, caption in written.items():
        manifest[f"{image.parent.name}/{image.stem}"] = {
            "captioner": captioner, "model_id": model_id,
            "sha256": hashlib.sha256(caption.strip().encode("utf-8")).hexdigest()}
    atomic_write_json(style_dir / CAPTION_MANIFEST, manifest, indent=1, sort_keys=True, ensure_ascii=False)


def split_identity(style: str, style_dir: Path, split: str, cache: DigestCache | None = None) -> dict[str, Any]:
    """Images, captions and captioner(s) of one split of a style."""
    folder = style_dir / split
    files = image_files(folder)
    identity = files_identity(f"{style}/{split}", files, str(folder), cache)
    manifest = read_caption_manifest(style_dir)
    captions, captioners = [], set()
    for path in files:
        text_path = path.with_suffix(".txt")
        if not text_path.is_file():
            continue
        text = read_caption(text_path)  # a caption that is not UTF-8 text is named here, not a crash
        captions.append([path.stem, text])
        entry = manifest.get(f"{split}/{path.stem}") or {}
        if entry.get("sha256") == hashlib.sha256(text.encode("utf-8")).hexdigest():
            captioners.add(f"{entry['captioner']}:{entry['model_id']}")
        else:  # edited by hand after captioning, or never captioned by us
            captioners.add(UNKNOWN_CAPTIONER)
    identity["captions"] = _sha(captions) if captions else None
    identity["captioned"] = len(captions)
    identity["captioner"] = ",".join(sorted(captioners)) or None
    return identity


def run_data_identity(config: Any, data: StyleData | Path) -> dict[str, Any]:
    """What a run with ``config`` consumes: ``{"train": ..., "test": ...[, "negatives": ...]}``, from the run's
    resolved style data (or the data root to resolve it under).

    Renders a procedural style on first use (like the run would); a missing style is the
    :class:`~nsync_bench.errors.DataError` that says how to get it.
    """
    from nsync_bench.config.methods import method_info
    from nsync_bench.data.styles import as_style_data

    resolved = as_style_data(config.run.style, data)
    info, style_dir = resolved.info, resolved.style_dir
    cache = _cache()
    identity = {"train": split_identity(info.name, style_dir, info.train_split, cache),
                "test": split_identity(info.name, style_dir, info.test_split, cache)}
    if method_info(config.run.method).needs_negatives:
        if config.nsync.negatives_dir:
            folder = Path(config.nsync.negatives_dir).expanduser()
            identity["negatives"] = files_identity(f"{info.name}/negatives", image_files(folder), str(folder), cache)
        else:  # rendered from the config and the train captions, both already in the key
            identity["negatives"] = {"name": f"{info.name}/negatives", "source": "generated", "images": None}
    from nsync_bench.models.identity import model_identity

    base_model = model_identity(config.model, cache.digest)  # None for the built-in models: keys unchanged
    if base_model is not None:
        identity[MODEL_CONTEXT] = base_model
    cache.save()
    return identity


def identity_digest(identity: dict[str, Any]) -> str:
    """One 16-hex-digit digest of a data identity (what a report cell and the run key use)."""
    return _sha(identity_for_key(identity))[:16]


def identity_for_key(identity: dict[str, Any]) -> dict[str, Any]:
    """The identity without where the data lies: moving a data root must not change run keys."""
    return {context: {k: v for k, v in part.items() if k != "source"} for context, part in identity.items()}


# The identity's parts under the context names MLflow's dataset inputs use.
INPUT_CONTEXTS = {"train": "training", "test": "evaluation", "negatives": "negatives"}
# A pretrained base model's identity (nsync_bench.models.identity): in the key, logged as model_identity.* params.
MODEL_CONTEXT = "base_model"


def dataset_inputs(identity: dict[str, Any], rendered_negatives: dict[str, Any] | None = None
                   ) -> dict[str, dict[str, str]]:
    """``{context: {"name", "source", "digest"}}`` for the MLflow dataset inputs
    (``training``/``evaluation``/``negatives``), digests derived from the run key's identity.

    A rendered negative set is in the key through its recipe (config and train captions); its
    files' digest, known once rendered, is what ``rendered_negatives`` (a :func:`files_identity`) adds.
    """
    out = {}
    for context, part in identity.items():
        if context not in INPUT_CONTEXTS:  # the base model is no dataset
            continue
        if context == "negatives" and part.get("images") is None:
            if rendered_negatives is None:
                continue
            part = {**rendered_negatives, "name": part["name"]}
        digest = _sha([part.get("images"), part.get("captions"), part.get("captioner")])[:16]
        out[INPUT_CONTEXTS[context]] = {"name": str(part["name"]), "source": str(part["source"]), "digest": digest}
    return out


def identity_params(identity: dict[str, Any]) -> dict[str, str]:
    """Flat ``data_identity.<context>.<field>`` params for MLflow (the report's cells read them), and
    ``model_identity.<field>`` for a pretrained base model (its resolved revision or weights digest)."""
    params = {}
    for context, part in identity_for_key(identity).items():
        prefix = "model_identity." if context == MODEL_CONTEXT else f"data_identity.{context}."
        for key, value in part.items():
            params[f"{prefix}{key}"] = "" if value is None else str(value)
    return params
