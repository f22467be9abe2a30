"""The captioner interface, the two captioners without a model (``files``, ``template``) and the helpers the
model captioners (``blip.py``, ``internvl.py``) share. The registry that names them all, and the caption
cache, are ``captions.py``: kept apart so that the captioners it names never import it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from nsync_bench.errors import ConfigError, DataError, ModelNotAvailableError


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
        from nsync_bench.data.pixels import load_rgb

        return self.caption([load_rgb(path) for path in paths])


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
        from nsync_bench.data.styles import read_caption

        captions, missing = [], []
        for path in paths:
            text = Path(path).with_suffix(".txt")
            caption = read_caption(text) if text.is_file() else ""
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

    from nsync_bench.models.hub import is_offline

    offline = " (offline: cache only, no download)" if is_offline() else ""
    return ModelNotAvailableError(
        f"{kind} model {model!r} is not available ({reason}). Looked in the Hugging Face cache "
        f"{constants.HF_HUB_CACHE}{offline}. Fix: on a connected machine run `hf download {model}` (older "
        f"huggingface_hub: `huggingface-cli download {model}`) and copy the snapshot into that cache (or point "
        "HF_HOME at a copied cache), or download it with `--local-dir DIR` and pass `--model DIR`; or caption "
        "without a model: `--captioner template --text '...'`."
    )


def pinned_revision(model: str, default_id: str, revision: str | None) -> str | None:
    """The commit a captioner loads: the one given, else the project's pin for its default hub model."""
    if revision or model != default_id:
        return revision
    from nsync_bench.models.hub_models import known_model

    known = known_model(default_id)
    return known.revision if known else None


def captioner_model_id(model: str, revision: str | None, settings: list[str]) -> str:
    """A captioner's cache identity: the model (local folders absolute, hub ids ``@revision``) and settings."""
    from nsync_bench.models.hub import model_key

    key = model_key(model)
    hub = key == model and not Path(model).expanduser().is_dir()
    return "|".join([f"{key}@{revision}" if hub and revision else key, *settings])
