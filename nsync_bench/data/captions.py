"""Pluggable captioners and a content-addressed caption cache.

Training with ``prompts.mode=caption`` needs a ``<stem>.txt`` beside every image. Captioners
produce them: ``files`` (the user's own .txt files), ``template`` (one fixed text), ``blip`` and
``internvl`` (vision-language models). Model captions are cached by (captioner, model_id,
sha256 of the image file bytes), so re-running after adding images, or on a copy of a dataset,
only captions what is new, and changing the model or its settings never reuses stale captions.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from nsync_bench.errors import ConfigError, DataError, ModelNotAvailableError, unknown_name
from nsync_bench.progress import NullProgress, Progress

log = logging.getLogger(__name__)

CAPTIONERS: dict[str, str] = {
    "files": "nsync_bench.data.captions:FilesCaptioner",
    "template": "nsync_bench.data.captions:TemplateCaptioner",
    "blip": "nsync_bench.data.captions:BlipCaptioner",
    "internvl": "nsync_bench.data.internvl:InternVLCaptioner",
}
"""Name -> ``module:Class``; imported only when used, so listing names never imports torch."""

BLIP_LARGE = "Salesforce/blip-image-captioning-large"
_PATH_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")


class Captioner:
    """Base class: ``caption`` maps images to one caption each; batching is the captioner's business.

    ``model_id`` names everything that determines the output (model and non-default settings):
    it is part of the cache key. ``cacheable`` is False for captioners whose output does not
    depend on pixels alone (``files``); ``writes`` is False for those that must not write .txt.
    """

    name: str = ""
    model_id: str = ""
    cacheable: bool = True
    writes: bool = True
    batch_size: int = 8

    def caption(self, images: list[Image.Image]) -> list[str]:
        raise NotImplementedError

    def caption_paths(self, paths: Sequence[Path]) -> list[str]:
        """Caption image files; the default opens them as RGB and calls :meth:`caption`."""
        images = []
        for path in paths:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        return self.caption(images)


class FilesCaptioner(Captioner):
    """The user's own ``<stem>.txt`` beside each image: it captions paths, not pixels."""

    name = "files"
    model_id = "files"
    cacheable = False
    writes = False

    def caption(self, images: list[Image.Image]) -> list[str]:
        paths = [getattr(image, "filename", "") for image in images]
        if not all(paths):
            raise DataError("the files captioner reads <stem>.txt beside each image file; give it paths "
                            "(caption_paths) or images opened from files, not pixels.")
        return self.caption_paths([Path(p) for p in paths])

    def caption_paths(self, paths: Sequence[Path]) -> list[str]:
        captions, missing = [], []
        for path in paths:
            text = Path(path).with_suffix(".txt")
            caption = text.read_text(encoding="utf-8").strip() if text.is_file() else ""
            if not caption:
                missing.append(text.name)
            captions.append(caption)
        if missing:
            folder = Path(paths[0]).parent
            raise DataError(
                f"{len(missing)} image(s) in {folder} have no (or an empty) caption file, e.g. "
                f"{', '.join(missing[:5])}. Fix: write one .txt per image with its caption, or generate "
                "them with `nsync-bench data captions --captioner template --text '...'` or `--captioner blip`."
            )
        return captions


class TemplateCaptioner(Captioner):
    """One fixed caption for every image, for when no captioning model can run."""

    name = "template"
    batch_size = 256

    def __init__(self, text: str = "an image") -> None:
        if not text.strip():
            raise ConfigError("the template captioner needs a non-empty text, e.g. --text 'a painting'.")
        self.text = " ".join(text.split())
        self.model_id = f"template:{self.text}"

    def caption(self, images: list[Image.Image]) -> list[str]:
        return [self.text] * len(images)


def resolve_device(device: str) -> str:
    """``cpu`` or an available CUDA device; anything else is a teaching error."""
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available here; use --device cpu.")
        return device
    raise ConfigError(f"unknown device {device!r}; use cpu or cuda (cuda:N).")


def model_not_available(kind: str, model: str, local: bool, reason: str,
                        hub_id: str = "<id>") -> ModelNotAvailableError:
    """The error naming the captioning model, where it was looked for, and how to get it."""
    if local:
        return ModelNotAvailableError(
            f"{kind} model directory {model!r} is missing, incomplete or unreadable ({reason}). Expected a "
            "Hugging Face model folder (config.json, weights, tokenizer/processor files). Fix: on a connected "
            f"machine run `hf download {hub_id} --local-dir DIR` (older: `huggingface-cli download {hub_id} "
            "--local-dir DIR`), copy DIR here and pass `--model DIR`; or caption without a model: "
            "`--captioner template --text '...'`."
        )
    from huggingface_hub import constants

    from nsync_bench.models.pretrained import _env_offline

    offline = " (offline: cache only, no download)" if _env_offline() else ""
    return ModelNotAvailableError(
        f"{kind} model {model!r} is not available ({reason}). Looked in the Hugging Face cache "
        f"{constants.HF_HUB_CACHE}{offline}. Fix: on a connected machine run `hf download {model}` (older "
        f"huggingface_hub: `huggingface-cli download {model}`) and copy the snapshot into that cache (or point "
        "HF_HOME at a copied cache), or download it with `--local-dir DIR` and pass `--model DIR`; or caption "
        "without a model: `--captioner template --text '...'`."
    )


def load_hf(kind: str, model: str, loaders: Sequence[Any], hub_id: str = "<id>") -> list[Any]:
    """Run ``loader(target, **kwargs)`` for each loader, offline-aware like models/pretrained.py.

    ``model`` is a local directory or a hub id; with HF_HUB_OFFLINE set a hub id is read from the
    cache only (``local_files_only``), so a missing model fails in milliseconds.
    """
    from huggingface_hub.errors import HFValidationError

    from nsync_bench.models.pretrained import _env_offline, _first_line, _load_errors

    path = Path(model).expanduser()
    local = path.is_dir()
    if not local and model.startswith(_PATH_PREFIXES):
        raise model_not_available(kind, model, True, "no such directory", hub_id)
    target, kwargs = (str(path), {}) if local else (model, {"local_files_only": _env_offline()})
    log.info("loading %s model %s (%s)", kind, target, "local" if local else "hub")
    try:
        return [loader(target, **kwargs) for loader in loaders]
    except HFValidationError as err:
        raise model_not_available(kind, model, False, f"neither a directory nor a valid hub id: {err}") from err
    except _load_errors() as err:
        reason = _first_line(err).split(". ")[0].rstrip(".")  # hub messages ramble after the first sentence
        raise model_not_available(kind, model, local, reason, hub_id) from err


def model_key(model: str) -> str:
    """A model reference as it enters ``model_id``: local directories absolute, hub ids as given."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model


class BlipCaptioner(Captioner):
    """BLIP image captioning (transformers), greedy decoding so captions are reproducible.

    With ``prompt`` BLIP continues that text ("a painting of" -> "a painting of a red house"), so
    the caption starts with the prompt. The model loads on the first :meth:`caption` call.
    """

    name = "blip"

    def __init__(self, model: str = BLIP_LARGE, prompt: str = "", max_new_tokens: int = 40,
                 device: str = "cpu", batch_size: int = 8) -> None:
        if max_new_tokens < 1 or batch_size < 1:
            raise ConfigError("blip: max_new_tokens and batch_size must be >= 1.")
        self.model, self.prompt, self.max_new_tokens = model, prompt, max_new_tokens
        self.device, self.batch_size = device, batch_size
        settings = [f"prompt={prompt!r}"] if prompt else []
        settings += [f"max_new_tokens={max_new_tokens}"] if max_new_tokens != 40 else []
        self.model_id = "|".join([model_key(model), *settings])
        self._net: Any = None
        self._processor: Any = None

    def load(self) -> None:
        if self._net is not None:
            return
        from transformers import BlipForConditionalGeneration, BlipProcessor

        device = resolve_device(self.device)
        loaders = [BlipProcessor.from_pretrained, BlipForConditionalGeneration.from_pretrained]
        self._processor, net = load_hf("BLIP", self.model, loaders, BLIP_LARGE)
        self._net = net.to(device).eval()
        self.device = device

    def caption(self, images: list[Image.Image]) -> list[str]:
        import torch

        self.load()
        captions: list[str] = []
        for start in range(0, len(images), self.batch_size):
            chunk = [image.convert("RGB") for image in images[start:start + self.batch_size]]
            kwargs: dict[str, Any] = {"images": chunk, "return_tensors": "pt"}
            if self.prompt:
                kwargs["text"] = [self.prompt] * len(chunk)
            inputs = self._processor(**kwargs).to(self.device)
            with torch.inference_mode():
                ids = self._net.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=self.max_new_tokens)
            captions += [text.strip() for text in self._processor.batch_decode(ids, skip_special_tokens=True)]
        return captions


def captioner_names() -> list[str]:
    return sorted(CAPTIONERS)


def make_captioner(name: str, **options: Any) -> Captioner:
    """Instantiate a registered captioner; an option it does not take is a teaching error."""
    if name not in CAPTIONERS:
        raise unknown_name("captioner", name, CAPTIONERS, "Write your own .txt files and use 'files' if none fits.")
    module, _, cls_name = CAPTIONERS[name].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    params = inspect.signature(cls).parameters.values()
    accepted = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no options"
        raise ConfigError(f"captioner {name!r} does not take option(s) {', '.join(unknown)}; it takes: {takes}.")
    return cls(**options)


# ------------------------------------------------------------------------------------------ cache
def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder + os.replace: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class CaptionCache:
    """``<root>/<captioner>/<sha256(model_id)[:12]>/<sha[:2]>/<sha>.json``, one small JSON per image."""

    def __init__(self, root: Path, captioner: str, model_id: str) -> None:
        self.captioner, self.model_id = captioner, model_id
        self.folder = root / captioner / hashlib.sha256(model_id.encode("utf-8")).hexdigest()[:12]

    def path(self, sha: str) -> Path:
        return self.folder / sha[:2] / f"{sha}.json"

    def get(self, sha: str) -> str | None:
        path = self.path(sha)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable caption cache entry %s (%s)", path, err)
            return None
        if entry.get("model_id") != self.model_id or entry.get("captioner") != self.captioner:
            return None  # a 12-hex-digit prefix collision; recompute rather than trust it
        return entry.get("caption") or None

    def put(self, sha: str, caption: str) -> None:
        entry = {"captioner": self.captioner, "model_id": self.model_id, "sha256": sha, "caption": caption}
        _atomic_write(self.path(sha), json.dumps(entry, ensure_ascii=False) + "\n")


@dataclass
class CaptionReport:
    """What :func:`caption_style` did. ``captioned``: computed by the captioner (cache misses)."""

    style: str
    captioner: str
    model_id: str
    splits: list[str]
    images: int = 0
    captioned: int = 0
    cache_hits: int = 0
    kept: int = 0
    written: int = 0
    empty: list[str] = field(default_factory=list)
    record: Path | None = None


def caption_style(
    style: str,
    data_root: Path | None,
    captioner: Captioner,
    *,
    splits: Sequence[str] | None = None,
    overwrite: bool = False,
    cache_root: Path | None = None,
    progress: Progress | None = None,
) -> CaptionReport:
    """Write ``<stem>.txt`` beside every image of ``splits`` (default: the style's train and test).

    Existing .txt files are kept (and their images never captioned) unless ``overwrite``; the
    ``files`` captioner only checks that every image has one. Records the captioner, model_id,
    counts and date in ``<style_dir>/captions.json``. ``cache_root`` defaults to
    ``cache_dir()/captions``.
    """
    from nsync_bench.data.styles import ensure_style_data, get_style, list_images
    from nsync_bench.paths import cache_dir
    from nsync_bench.paths import data_root as default_data_root

    info = get_style(style)
    style_dir = ensure_style_data(style, default_data_root(data_root))
    splits = list(splits) if splits else [info.train_split, info.test_split]
    paths = [img.path for split in dict.fromkeys(splits) for img in list_images(style_dir, split)]
    report = CaptionReport(style, captioner.name, captioner.model_id, list(dict.fromkeys(splits)), len(paths))
    cache = CaptionCache(cache_root or cache_dir() / "captions", captioner.name, captioner.model_id)
    progress = progress or NullProgress()
    progress.start(f"captions {style} ({captioner.name})", total=len(paths))
    try:
        if not captioner.writes:
            captioner.caption_paths(paths)
            report.kept = len(paths)
            progress.advance(len(paths))
        else:
            _caption_and_write(paths, captioner, cache, overwrite, report, progress)
    finally:
        progress.stop()
    if report.empty:
        log.warning("%d image(s) got an empty caption and no .txt, e.g. %s", len(report.empty), report.empty[:5])
    record = {k: v for k, v in asdict(report).items() if k not in ("style", "record")}
    record.update(empty=len(report.empty), overwrite=overwrite,
                  date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    report.record = style_dir / "captions.json"
    _atomic_write(report.record, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    log.info("captions for %s: %s", style, {k: v for k, v in record.items() if type(v) is int})
    return report


def _caption_and_write(paths: list[Path], captioner: Captioner, cache: CaptionCache, overwrite: bool,
                       report: CaptionReport, progress: Progress) -> None:
    """Keep, take from the cache, or compute (in batches, caching each batch as it finishes)."""

    def write(path: Path, caption: str) -> None:
        if not caption:
            report.empty.append(path.name)
            return
        _atomic_write(path.with_suffix(".txt"), caption + "\n")
        report.written += 1

    misses: list[tuple[Path, str]] = []
    for path in paths:
        if not overwrite and path.with_suffix(".txt").is_file():
            report.kept += 1
            progress.advance(1)
            continue
        sha = file_sha256(path)
        cached = cache.get(sha) if captioner.cacheable else None
        if cached is None:
            misses.append((path, sha))
            continue
        report.cache_hits += 1
        write(path, cached)
        progress.advance(1)
    for start in range(0, len(misses), max(1, captioner.batch_size)):
        batch = misses[start:start + max(1, captioner.batch_size)]
        captions = captioner.caption_paths([path for path, _ in batch])
        for (path, sha), caption in zip(batch, captions, strict=True):
            report.captioned += 1
            caption = " ".join(caption.split())  # one line: list_images reads the whole file
            if caption and captioner.cacheable:
                cache.put(sha, caption)
            write(path, caption)
        progress.advance(len(batch))
