"""NSYNC's negative set: the frozen base model's generic rendering of each training caption.

One image per training image, generated from ``"{caption} in the style of {generic}"`` (generic =
the style's initializer word: painting, illustration, animation), from a per-image seed derived
from (negatives.seed, file stem), saved under the positive image's file stem (released code:
``gen_generic_dataset.py``, which set no seed). The set is shared by every run of a style and
cached by what determines it:

    <data_root>/negatives/<base model>/<style>/<key>/train/<stem>.png   + negatives.json

where ``key`` hashes (base model, prompt template, generic word, seed, steps, guidance,
resolution, save size, the captions). ``negatives.json`` records each image's sha256; a cached set
is verified against it before every use, and a torn or altered image is an error naming the command
that re-renders the set (``data negatives STYLE --force``). A set whose rendering produced a non-finite
image is never cached (nsync_bench.models.finite). A user-supplied folder (``nsync.negatives_dir``)
is used as is, after checking it has an image for every training stem.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nsync_bench import seeding
from nsync_bench.config.run_config import EvalConfig, RunConfig
from nsync_bench.data.styles import IMAGE_SUFFIXES, StyleImage, StyleInfo
from nsync_bench.errors import CorruptFileError, DataError
from nsync_bench.io import atomic_dir, file_sha256, read_json
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
    """Render the set into ``target/train`` atomically (a temp sibling renamed into place); an existing
    ``target`` (another process finished the same set first) is kept."""
    from nsync_bench.models.finite import NonFiniteSamplesError
    from nsync_bench.models.sampling import EvalPrompt, generate_batch

    progress = progress or NullProgress()
    sampling = EvalConfig(num_inference_steps=spec.num_inference_steps, guidance_scale=spec.guidance_scale,
                          save_size=spec.save_size)
    items = [EvalPrompt(k, caption, spec.prompt_template.format(caption=caption, generic=spec.generic_word),
                        image_seed(spec, image.path.stem), image.path.stem)
             for k, (image, caption) in enumerate(zip(positives, captions, strict=True))]
    with atomic_dir(target, replace=False) as tmp:  # Ctrl-C, SIGTERM or an error: no temp folder stays behind
        (tmp / "train").mkdir()
        progress.start(f"negatives {spec.style}", total=len(items))
        try:
            for start in range(0, len(items), spec.batch_size):
                chunk = items[start : start + spec.batch_size]
                for item, picture in zip(chunk, generate_batch(pipe, chunk, sampling, spec.resolution), strict=True):
                    picture.save(tmp / "train" / f"{item.source}.png")
                progress.advance(len(chunk))
        except NonFiniteSamplesError as err:
            raise err.at(f"rendering the negative set of {spec.style}", "Nothing was cached; lower "
                         "negatives.guidance_scale or fix the base model, then run again.") from None
        finally:
            progress.stop()
        records = [{"stem": item.source, "prompt": item.prompt, "seed": item.seed,
                    "sha256": file_sha256(tmp / "train" / f"{item.source}.png")} for item in items]
        (tmp / META_FILE).write_text(json.dumps({"spec": spec.__dict__, "images": records}, indent=2))
    return target


def verify_negative_set(target: Path, style: str) -> None:
    """Check a cached set against the sha256 its ``negatives.json`` recorded; a torn, missing or altered
    image (or record) is a :class:`CorruptFileError` naming it and the command that re-renders the set."""
    fix = f"Re-render the set: `nsync-bench data negatives {style} --force` (with the run's --profile and --set)."
    meta = read_json(target / META_FILE, "the negative-set record", fix, required=("images",))
    for record in meta["images"]:
        if not isinstance(record, dict) or "stem" not in record:
            raise CorruptFileError(f"the negative-set record {target / META_FILE} is malformed. {fix}")
        if "sha256" not in record:  # rendered before digests were recorded
            continue
        path = target / "train" / f"{record['stem']}.png"
        if not path.is_file() or file_sha256(path) != record["sha256"]:
            state = "is missing" if not path.is_file() else "does not match the sha256 recorded when it was rendered"
            raise CorruptFileError(f"cached negative image {path} {state} (torn, truncated or altered). {fix}")


def ensure_negative_set(
    config: RunConfig,
    style: StyleInfo,
    positives: list[StyleImage],
    captions: list[str],
    components: Any,
    data_root: Path,
    progress: Progress | None = None,
    force: bool = False,
) -> list[Path]:
    """Paths of the negatives paired with ``positives``: the user's folder, the cache (verified), or newly
    rendered (``force``: rendered again even when cached)."""
    if config.nsync.negatives_dir:
        return paired_paths(Path(config.nsync.negatives_dir).expanduser(), positives)
    spec = negative_spec(config, style, components.source)
    target = negative_set_dir(data_root, spec, captions)
    if force and target.exists():
        log.info("--force: removing the cached negative set %s to render it again", target)
        shutil.rmtree(target)
    if not (target / META_FILE).is_file():
        from nsync_bench.models.diffusers_pipeline import build_pipeline

        log.info("generating the negative set of %s (%d images) into %s", style.name, len(positives), target)
        generate_negative_set(build_pipeline(components), spec, positives, captions, target, progress)
    verify_negative_set(target, style.name)
    return paired_paths(target / "train", positives)


def negatives_for_config(config: RunConfig, data_root: Path, progress: Progress | None = None,
                         force: bool = False) -> list[Path]:
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
    return ensure_negative_set(config, style, positives, captions, components, data_root, progress, force)
