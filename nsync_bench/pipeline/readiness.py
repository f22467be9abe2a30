"""What a run needs before it can start, whether it is here, and the command that makes what is not.

``nsync-bench run ... --dry-run`` prints this plan; the check before training (pipeline.preflight) enforces
it, so a run without its metric weights stops before the first step instead of after hours of training.
A need is

* ``present``: on this machine (weights with a known checksum verified against it);
* ``download``: absent, but the run fetches it itself: online (no ``HF_HUB_OFFLINE``) with its identity
  pinned (a hub commit, or a sha256 that the download is checked against);
* ``automatic``: the run makes it on its way (NSYNC's negative set, rendered by the base model);
* ``missing``: a step to run first (offline downloads, data, captions), with its command;
* ``blocked``: no command fixes it in place (images far smaller than the resolution).

Time estimates for captions and negative sets are nominal figures, stated as such (:data:`NOMINAL`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nsync_bench.config.run_config import CLIP_MODEL, RunConfig
from nsync_bench.models.hub import is_offline

log = logging.getLogger(__name__)

# Nominal seconds per image (GPU: one H100-class GPU, fp16; CPU: this project's 2-core machine); estimates only.
NOMINAL = {
    "blip": {"gpu": 0.05, "cpu": 1.5},  # BLIP-large, greedy, 40 new tokens, batch 8
    "internvl": {"gpu": 1.0, "cpu": 12.0},  # InternVL2-2B, 448 px tiles, greedy
    "sd-image-50-steps": {"gpu": 0.4, "cpu": 60.0},  # SD 1.5/2 at 512 px, 50 steps with CFG
}
CAPTIONER = "blip"  # what a missing caption's command suggests (InternVL runs remote code; see data/internvl.py)
HUB_HASHES = "by the revision"  # a hub commit pins every file's sha256 (huggingface_hub verifies downloads)
STATUSES = ("present", "download", "automatic", "missing", "blocked")


@dataclass
class Need:
    what: str
    detail: str
    status: str
    size: int | None = None  # bytes to download
    approx: bool = False  # the size is an estimate
    revision: str | None = None
    sha256: str | None = None
    command: str | None = None
    note: str = ""

    @property
    def blocking(self) -> bool:
        return self.status in ("missing", "blocked")


@dataclass
class RunPlan:
    label: str
    offline: bool
    needs: list[Need] = field(default_factory=list)

    def blocking(self) -> list[Need]:
        return [need for need in self.needs if need.blocking]

    @property
    def ready(self) -> bool:
        return not self.blocking()

    def download_bytes(self) -> int:
        return sum(n.size or 0 for n in self.needs if n.status in ("download", "missing") and n.size)

    def commands(self) -> list[str]:
        """The commands of the blocking needs, in order, each once."""
        return list(dict.fromkeys(n.command for n in self.blocking() if n.command))


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate(kind: str, images: int) -> str:
    """``"~3 min on a GPU, ~1.2 h on a CPU"`` for ``images`` of a nominal kind (:data:`NOMINAL`)."""
    rates = NOMINAL[kind]
    return f"~{duration(images * rates['gpu'])} on a GPU, ~{duration(images * rates['cpu'])} on a CPU (nominal)"


def caption_command(style: str, captioner: str = CAPTIONER) -> str:
    return f"nsync-bench data captions {style} --captioner {captioner} --device auto"


def caption_estimate(images: int, captioner: str = CAPTIONER) -> str:
    return f"{images} images: {estimate(captioner, images)}"


# ------------------------------------------------------------------------------------ base model
def _hub_files_cached(repo_id: str, revision: str | None, files: list[str]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return all(isinstance(try_to_load_from_cache(repo_id, f, revision=revision), str) for f in files)


def base_model_need(config: RunConfig) -> Need | None:
    from nsync_bench.models.hub_models import known_model
    from nsync_bench.models.identity import is_commit

    model = config.model
    if model.source != "pretrained" or not model.pretrained:
        return None
    path = Path(model.pretrained).expanduser()
    if path.is_dir() or model.pretrained.startswith(("/", "./", "../", "~")):
        ok = (path / "model_index.json").is_file() and all((path / sub).is_dir() for sub in ("unet", "vae"))
        return Need("base model", str(path), "present" if ok else "missing",
                    command=None if ok else f"copy a diffusers Stable Diffusion folder to {path}",
                    note="" if ok else "need model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/")
    known = known_model(model.pretrained)
    revision = model.revision or (known.revision if known else None)
    files = list(known.files) if known else ["model_index.json"]
    present = _hub_files_cached(model.pretrained, model.revision, files)
    pinned = is_commit(model.revision)
    pin = f" --revision {revision}" if revision else ""
    command = f"hf download {model.pretrained}{pin} " + " ".join(files)
    status = "present" if present else ("download" if not is_offline() and pinned else "missing")
    note = "" if pinned else "revision not pinned: the key records the commit it resolves to"
    return Need("base model", model.pretrained, status, size=known.size if known else None,
                approx=bool(known and known.approx), revision=revision, sha256=HUB_HASHES if pinned else None,
                command=None if present else command, note=note)


def captioner_need(captioner: str = CAPTIONER) -> Need:
    """The captioning model the suggested caption command downloads (pinned)."""
    from nsync_bench.models.hub_models import BLIP_LARGE, INTERNVL2_2B

    model = BLIP_LARGE if captioner == "blip" else INTERNVL2_2B
    present = _hub_files_cached(model.repo_id, model.revision, list(model.files))
    status = "present" if present else ("download" if not is_offline() else "missing")
    return Need(f"captioner model ({captioner})", model.repo_id, status, size=model.size, approx=model.approx,
                revision=model.revision, sha256=HUB_HASHES, command=None if present else model.download_command(),
                note="" if present else "fetched by the captions command when online")


# ------------------------------------------------------------------------------------ data
def _short_side(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as image:
        return min(image.size)


def style_needs(config: RunConfig, data_root: Path) -> list[Need]:
    """The style's images (present or how to get them), their captions, and whether they suit the resolution."""
    from nsync_bench.config.methods import method_info
    from nsync_bench.data.styles import get_style, list_images
    from nsync_bench.data.validate import too_small_to_train
    from nsync_bench.errors import DataError

    style = get_style(config.run.style)
    style_dir = data_root / style.name
    present = all((style_dir / split).is_dir() for split in style.splits)
    needs: list[Need] = []
    if not present and style.source != "procedural":
        verb = f"nsync-bench data fetch {style.name}" if style.source == "archive" else \
            f"nsync-bench data import {style.name} PATH"
        needs.append(Need("style data", style.url or style.layout or style.name, "missing", size=style.size,
                          sha256=style.sha256, command=verb,
                          note="" if style.sha256 else "sha256 recorded by the first fetch"))
        needs.append(Need("captions", f"{style.name}: every image without a .txt", "missing",
                          command=caption_command(style.name),
                          note=f"after the data step, if its images carry no captions; ~{NOMINAL['blip']['gpu']} s "
                               f"per image on a GPU, ~{NOMINAL['blip']['cpu']} s on a CPU (nominal)"))
        needs.insert(-1, captioner_need())  # before the captions step that uses it
        return needs
    if not present:  # procedural: rendered now (seconds, as the run would), so its images can be checked too
        from nsync_bench.data.styles import ensure_style_data

        ensure_style_data(style.name, data_root)
    needs.append(Need("style data", str(style_dir), "present"))
    try:
        train, test = list_images(style_dir, style.train_split), list_images(style_dir, style.test_split)
    except DataError as err:
        needs.append(Need("style data", str(style_dir), "blocked", note=str(err)))
        return needs
    uncaptioned = [img for img in [*train, *test] if not img.caption]
    train_needs = config.prompts.mode == "caption" or (method_info(config.run.method).needs_negatives
                                                       and not config.nsync.negatives_dir)
    if any(not img.caption for img in test) or (train_needs and any(not img.caption for img in train)):
        needs.append(Need("captions", f"{style.name}: {len(uncaptioned)} of {len(train) + len(test)} images",
                          "missing", command=caption_command(style.name),
                          note=caption_estimate(len(uncaptioned))))
        needs.insert(-1, captioner_need())  # before the captions step that uses it
    else:
        needs.append(Need("captions", f"{style.name}: {len(train) + len(test)} images", "present"))
    smallest = min(_short_side(img.path) for img in [*train, *test])
    if too_small_to_train(smallest, config.model.resolution):
        needs.append(Need("image size", f"smallest side {smallest} px", "blocked",
                          note=f"below a quarter of model.resolution = {config.model.resolution}: pick a style with "
                               f"larger images or --set model.resolution={smallest * 4} (or less)"))
    return needs


# ------------------------------------------------------------------------------------ metric weights
def metric_weight_names(config: RunConfig) -> list[str]:
    """Registry names of the official weights the run's metrics load (nsync_bench.metrics.weights)."""
    from nsync_bench.metrics.registry import extractor_kinds

    metrics = config.metrics
    if metrics.extractors != "real":
        return []
    kinds = set(extractor_kinds(metrics.names))
    names = []
    if "inception" in kinds:
        from nsync_bench.metrics.extractors.inception import MODES

        names.append(MODES[metrics.inception_mode])
    if "clip" in kinds and metrics.clip_model == CLIP_MODEL:
        names.append("clip-vit-l-14-336")
    if "csd" in kinds:
        names.append("csd-vit-l")
    return names


def _weight_present(name: str, weights_dir: Path | None) -> tuple[bool, str]:
    from nsync_bench.errors import ModelNotAvailableError
    from nsync_bench.metrics.extractors.csd import CONVERTED_NAME
    from nsync_bench.metrics.weights import WeightsError, require_weight, weight_path

    if name == "csd-vit-l" and weight_path(name, weights_dir).with_name(CONVERTED_NAME).is_file():
        return True, "the safetensors conversion"
    try:
        require_weight(name, weights_dir)
    except ModelNotAvailableError:
        return False, ""
    except WeightsError as err:  # there, but not the registered file
        return False, str(err)
    return True, ""


def weight_needs(config: RunConfig, weights_dir: Path | None) -> list[Need]:
    from nsync_bench.metrics.weights import get_entry, weight_path

    needs = []
    for name in metric_weight_names(config):
        entry = get_entry(name)
        present, note = _weight_present(name, weights_dir)
        automatic = not is_offline() and entry.checksum_known and not note
        status = "present" if present else ("download" if automatic else "missing")
        sha = entry.sha256 or (f"{entry.sha256_prefix}… (prefix)" if entry.sha256_prefix else None)
        if not present and not entry.checksum_known:
            note = note or "no registered checksum: fetch it knowingly (the fetch records its sha256)"
        if entry.kind == "hub" and entry.revision:
            sha = HUB_HASHES
        needs.append(Need(f"metric weights {name}", entry.repo_id or entry.url, status, size=entry.size,
                          approx=entry.kind == "hub", revision=entry.revision, sha256=sha,
                          command=None if present else f"nsync-bench weights fetch {name}",
                          note=note or (f"-> {weight_path(name, weights_dir)}" if not present else "")))
    metrics = config.metrics
    if "cmmd" in metrics.names and metrics.extractors == "real" and metrics.clip_model != CLIP_MODEL:
        needs.append(Need("metric weights (CMMD CLIP)", config.metrics.clip_model, "present",
                          note="a user-chosen CLIP: checked when it loads"))
    return needs


# ------------------------------------------------------------------------------------ negatives
def negative_set_need(config: RunConfig, data_root: Path) -> Need | None:
    from nsync_bench.config.methods import method_info

    if not method_info(config.run.method).needs_negatives:
        return None
    if config.nsync.negatives_dir:
        folder = Path(config.nsync.negatives_dir).expanduser()
        return Need("negative set", str(folder), "present" if folder.is_dir() else "missing",
                    command=None if folder.is_dir() else f"put one image per training image into {folder}")
    from nsync_bench.data.styles import get_style, list_images

    style = get_style(config.run.style)
    try:
        count = len(list_images(data_root / style.name, style.train_split))
    except Exception:  # no data yet: counted once it is fetched
        return Need("negative set", "rendered by the base model before training", "automatic",
                    note=f"one image per training image: ~{NOMINAL['sd-image-50-steps']['gpu']} s each on a GPU "
                         "(nominal)")
    rendered = _rendered_negatives(config, data_root, style)
    if rendered:
        return Need("negative set", str(rendered), "present")
    return Need("negative set", f"{count} images rendered by the base model before training", "automatic",
                command=f"nsync-bench data negatives {style.name} --profile {config.run.profile}",
                note=estimate("sd-image-50-steps", count))


def _rendered_negatives(config: RunConfig, data_root: Path, style: Any) -> Path | None:
    from nsync_bench.data.negatives import META_FILE, negative_set_dir, negative_spec
    from nsync_bench.data.styles import list_images
    from nsync_bench.models.pretrained import source_label

    model = config.model
    if model.source != "pretrained" or not model.pretrained:
        return None  # built-in models render in seconds
    captions = [img.caption or "" for img in list_images(data_root / style.name, style.train_split)]
    folder = negative_set_dir(data_root, negative_spec(config, style, source_label(model.pretrained, model.revision)),
                              captions)
    return folder if (folder / META_FILE).is_file() else None


# ------------------------------------------------------------------------------------ the plan
def plan_run(config: RunConfig, data_root: Path, weights_dir: Path | None = None) -> RunPlan:
    """Every need of a run with ``config``, checked on this machine. Nothing is downloaded, trained or logged;
    a procedural style is rendered into the data root (seconds, as the run itself would)."""
    spec = config.run
    plan = RunPlan(f"{spec.style}/{spec.method}/seed{spec.seed} ({spec.profile}, {spec.protocol})", is_offline())
    for need in (base_model_need(config), *style_needs(config, data_root), *weight_needs(config, weights_dir),
                 negative_set_need(config, data_root)):
        if need is not None:
            plan.needs.append(need)
    return plan


def fetch_downloads(plan: RunPlan, weights_dir: Path | None, progress: Any = None) -> None:
    """Fetch the metric weights a plan marks ``download`` (online, checksum known), before training."""
    from nsync_bench.metrics.weights import fetch

    for need in plan.needs:
        if need.status == "download" and need.what.startswith("metric weights "):
            name = need.what.removeprefix("metric weights ")
            log.info("fetching the metric weights %s before training", name)
            fetch(name, weights_dir, progress=progress)
            need.status = "present"


def blocking_message(plan: RunPlan) -> str:
    lines = [f"{n.what} ({n.detail}): {n.status}" + (f"; run `{n.command}`" if n.command else "")
             + (f" ({n.note})" if n.note else "") for n in plan.blocking()]
    offline = " Offline (HF_HUB_OFFLINE=1): nothing is downloaded by the run itself." if plan.offline else ""
    return (f"the run {plan.label} cannot start: " + "; ".join(lines) + "." + offline
            + " `nsync-bench run ... --dry-run` prints the whole plan. Nothing was trained.")
