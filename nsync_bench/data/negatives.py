"""NSYNC's negative set: the frozen base model's generic rendering of each training caption.

One image per training image, generated from ``"{caption} in the style of {generic}"`` (generic =
the style's initializer word: painting, illustration, animation), from a per-image seed derived
from (negatives.seed, file stem), saved under the positive image's file stem (released code:
``gen_generic_dataset.py``, which set no seed). The set is shared by every run of a style and
cached by what determines it:

    <data_root>/negatives/<base model>/<style>/<key>/train/<stem>.png   + negatives.json

where ``key`` hashes (base model, prompt template, generic word, seed, steps, guidance,
resolution, save size, the captions). A user-supplied folder (``nsync.negatives_dir``) is used
as is, after checking it has an image for every training stem.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nsync_bench import seeding
from nsync_bench.config.run_config import EvalConfig, RunConfig
from nsync_bench.data.styles import IMAGE_SUFFIXES, StyleImage, StyleInfo
from nsync_bench.errors import DataError
from nsync_bench.progress import NullProgress, Progress

log = logging.getLogger(__name__)

META_FILE = "negatives.json"


@dataclass(frozen=True)
class NegativeSetSpec:
    """Everything that determines a negative set's pixels."""

    base_model: str
    style: str
    prompt_template: str
    generic_word: str
    seed: int
    num_inference_steps: int
    guidance_scale: float
    resolution: int
    save_size: int
    batch_size: int

    def key(self, captions: list[str]) -> str:
        payload = json.dumps({**self.__dict__, "captions": captions}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def negative_spec(config: RunConfig, style: StyleInfo, base_model: str) -> NegativeSetSpec:
    neg = config.negatives
    return NegativeSetSpec(
        base_model=base_model,
        style=style.name,
        prompt_template=neg.prompt_template,
        generic_word=neg.generic_word or style.initializer_token,
        seed=neg.seed,
        num_inference_steps=neg.num_inference_steps,
        guidance_scale=neg.guidance_scale,
        resolution=config.model.resolution,
        save_size=neg.save_size,
        batch_size=neg.batch_size,
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "model"


def negative_set_dir(data_root: Path, spec: NegativeSetSpec, captions: list[str]) -> Path:
    return data_root / "negatives" / _slug(spec.base_model) / spec.style / spec.key(captions)


def image_seed(spec: NegativeSetSpec, stem: str) -> int:
    """Per-image seed keyed by file stem, so adding an image does not change the others."""
    return seeding.derive_seed(spec.seed, seeding.NEGATIVE_SET, stem)


def paired_paths(folder: Path, positives: list[StyleImage]) -> list[Path]:
    """The negative image of each positive (same stem, any image suffix); missing ones are an error."""
    by_stem = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES} if folder.is_dir() else {}
    missing = [img.path.stem for img in positives if img.path.stem not in by_stem]
    if missing:
        raise DataError(
            f"negative set {folder} lacks {len(missing)} of {len(positives)} images, e.g. {missing[:5]}; "
            "each training image needs a negative with the same file stem. Regenerate it with "
            "`nsync-bench data negatives STYLE` or fix --set nsync.negatives_dir."
        )
    return [by_stem[img.path.stem] for img in positives]


def generate_negative_set(
    pipe: Any,
    spec: NegativeSetSpec,
    positives: list[StyleImage],
    captions: list[str],
    target: Path,
    progress: Progress | None = None,
) -> Path:
    """Render the set into ``target/train`` atomically (a temp sibling renamed into place)."""
    from nsync_bench.pipeline.generation import EvalPrompt, generate_batch

    progress = progress or NullProgress()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-negatives-", dir=target.parent))
    sampling = EvalConfig(num_inference_steps=spec.num_inference_steps, guidance_scale=spec.guidance_scale,
                          save_size=spec.save_size)
    try:
        (tmp / "train").mkdir()
        items = [EvalPrompt(k, caption, spec.prompt_template.format(caption=caption, generic=spec.generic_word),
                            image_seed(spec, image.path.stem), image.path.stem)
                 for k, (image, caption) in enumerate(zip(positives, captions, strict=True))]
        progress.start(f"negatives {spec.style}", total=len(items))
        for start in range(0, len(items), spec.batch_size):
            chunk = items[start : start + spec.batch_size]
            for item, picture in zip(chunk, generate_batch(pipe, chunk, sampling, spec.resolution), strict=True):
                picture.save(tmp / "train" / f"{item.source}.png")
            progress.advance(len(chunk))
        progress.stop()
        records = [{"stem": item.source, "prompt": item.prompt, "seed": item.seed} for item in items]
        meta = {"spec": spec.__dict__, "images": records}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        if target.exists():  # another process finished the same set first: keep theirs
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def ensure_negative_set(
    config: RunConfig,
    style: StyleInfo,
    positives: list[StyleImage],
    captions: list[str],
    components: Any,
    data_root: Path,
    progress: Progress | None = None,
) -> list[Path]:
    """Paths of the negatives paired with ``positives``: the user's folder, the cache, or newly rendered."""
    if config.nsync.negatives_dir:
        return paired_paths(Path(config.nsync.negatives_dir).expanduser(), positives)
    spec = negative_spec(config, style, components.source)
    target = negative_set_dir(data_root, spec, captions)
    if not (target / META_FILE).is_file():
        from nsync_bench.models.pipeline import build_pipeline

        log.info("generating the negative set of %s (%d images) into %s", style.name, len(positives), target)
        generate_negative_set(build_pipeline(components), spec, positives, captions, target, progress)
    return paired_paths(target / "train", positives)


def negatives_for_config(config: RunConfig, data_root: Path, progress: Progress | None = None) -> list[Path]:
    """Build (or find) the negative set a run with ``config`` would train on; return its paths."""
    from nsync_bench.data.styles import ensure_style_data, get_style, list_images, require_captions
    from nsync_bench.models.loading import components_for

    style = get_style(config.run.style)
    style_dir = ensure_style_data(style.name, data_root)
    positives = list_images(style_dir, style.train_split)
    captions = require_captions(positives)
    if config.nsync.negatives_dir:
        return paired_paths(Path(config.nsync.negatives_dir).expanduser(), positives)
    components = components_for(config)[2]
    return ensure_negative_set(config, style, positives, captions, components, data_root, progress)
