"""Real Stable Diffusion base models (SD 1.5 / SD 2.x) from a hub id or a local directory.

Loads each part of a diffusers ``StableDiffusionPipeline`` snapshot separately (methods train
against the parts, not the pipeline) and turns every "file not there" failure into a
:class:`ModelNotAvailableError` that says where we looked and how to get the weights, since the
benchmark usually runs offline against a pre-filled cache.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from nsync_bench.errors import ModelNotAvailableError
from nsync_bench.models.components import DiffusionComponents
from nsync_bench.models.hub import first_line, is_offline, load_errors, resolve_source
from nsync_bench.models.tokenizer import check_tokenizer

logger = logging.getLogger(__name__)

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
"""The maintained mirror of ``runwayml/stable-diffusion-v1-5`` (the original was taken down)."""

def _not_available(name: str, local: bool, reason: str, offline: bool = False,
                   revision: str | None = None) -> ModelNotAvailableError:
    """Build the error naming the model, where it was looked for, and how to get it."""
    if local:
        return ModelNotAvailableError(
            f"base model directory {name!r} is incomplete or unreadable ({reason}). Expected a diffusers "
            "Stable Diffusion folder: model_index.json, tokenizer/, text_encoder/, vae/, unet/, scheduler/. "
            f"Fix: on a connected machine run `huggingface-cli download {SD15} --local-dir DIR` "
            f"(newer huggingface_hub: `hf download {SD15} --local-dir DIR`), copy DIR here and pass it "
            "with `--set model.pretrained=DIR`."
        )
    from huggingface_hub import constants

    pin = f" --revision {revision}" if revision else ""
    return ModelNotAvailableError(
        f"base model {name!r}{pin.replace(' --revision ', '@')} is not available ({reason}). Looked in the "
        f"Hugging Face cache {constants.HF_HUB_CACHE}{' (offline: cache only, no download)' if offline else ''}. "
        f"Fix: on a connected machine run `hf download {name}{pin}` (older huggingface_hub: "
        f"`huggingface-cli download {name}{pin}`) and copy the resulting snapshot into that cache (or point HF_HOME "
        "at a copied cache), or download it to a directory and pass `--set model.pretrained=/path`."
    )


def _resolve_scheduler_class(class_name: str | None) -> Any:
    """The diffusers scheduler class named in ``scheduler_config.json`` (PNDM if unknown)."""
    import diffusers

    cls = getattr(diffusers, class_name or "", None)
    if isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin):
        return cls
    logger.warning("unknown scheduler class %r; sampling with PNDMScheduler instead", class_name)
    return diffusers.PNDMScheduler


def dtype_kwargs(torch_dtype: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Dtype keyword for (transformers, diffusers): transformers 5 renamed ``torch_dtype`` to ``dtype``.

    None means fp32 for the text encoder explicitly: transformers 5 otherwise loads in the file's
    dtype ("auto"), so an fp16 snapshot (the hub's fp16 variant) would give a half-precision text
    encoder whose TI row AdamW cannot train. diffusers loads fp32 by default already.
    """
    import torch
    import transformers

    major = int(transformers.__version__.split(".")[0])
    key = "dtype" if major >= 5 else "torch_dtype"
    if torch_dtype is None:
        return {key: torch.float32}, {}
    return {key: torch_dtype}, {"torch_dtype": torch_dtype}


def _load_tokenizer(cls: Any, target: str, kwargs: dict[str, Any]) -> Any:
    """The tokenizer of ``target``; transformers 4 without vocabulary files fails in the constructor (a
    TypeError), which is the same "files missing" as transformers 5's silent 2-token tokenizer."""
    try:
        return cls.from_pretrained(target, subfolder="tokenizer", **kwargs)
    except (TypeError, ValueError) as err:
        raise OSError(f"tokenizer/ has no vocabulary files (vocab.json, merges.txt): {first_line(err)}") from err


def source_label(name_or_path: str, revision: str | None = None) -> str:
    """How a loaded base model is named (``components.source``; negative sets are keyed by it): a local
    directory's absolute path, else the hub id with ``@revision`` when one is given."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path.resolve())
    return f"{name_or_path}@{revision}" if revision else name_or_path


def load_pretrained_components(
    name_or_path: str,
    *,
    revision: str | None = None,
    torch_dtype: Any = None,
    offline: bool | None = None,
) -> DiffusionComponents:
    """Load tokenizer, text encoder, VAE, UNet and schedulers of a Stable Diffusion model.

    ``name_or_path`` is an existing directory (diffusers layout) or a hub id. Offline (``offline``
    or, when None, ``HF_HUB_OFFLINE``) hub ids are resolved from the local cache only, so a missing
    model fails in milliseconds instead of retrying the network. Frozen (``requires_grad=False``)
    like the tiny components: methods decide what trains.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from huggingface_hub.errors import HFValidationError
    from transformers import CLIPTextModel, CLIPTokenizer

    offline = is_offline() if offline is None else offline

    def missing(local: bool, reason: str) -> ModelNotAvailableError:
        return _not_available(name_or_path, local, reason, offline, revision)

    target, local, kwargs = resolve_source(name_or_path, missing, offline=offline, revision=revision)
    source = source_label(name_or_path, revision)
    tf_dtype, df_dtype = dtype_kwargs(torch_dtype)
    logger.info("loading base model %s (%s, offline=%s)", source, "local" if local else "hub", offline)

    try:
        with warnings.catch_warnings():
            # diffusers 0.42 still passes huggingface_hub's removed `local_dir_use_symlinks`: noise.
            warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
            # The scheduler config is tiny and fails fast, so a missing model is reported before
            # any weights are read.
            config = DDPMScheduler.load_config(target, subfolder="scheduler", **kwargs)
            tokenizer = _load_tokenizer(CLIPTokenizer, target, kwargs)
            check_tokenizer(tokenizer, f"{source} (tokenizer/)", expected_size=None)
            text_encoder = CLIPTextModel.from_pretrained(
                target, subfolder="text_encoder", **kwargs, **tf_dtype
            )
            vae = AutoencoderKL.from_pretrained(target, subfolder="vae", **kwargs, **df_dtype)
            unet = UNet2DConditionModel.from_pretrained(target, subfolder="unet", **kwargs, **df_dtype)
    except ModelNotAvailableError as err:
        raise missing(local, str(err)) from err
    except HFValidationError as err:
        raise missing(False, f"neither an existing directory nor a valid hub id: {err}") from err
    except load_errors() as err:
        raise missing(local, first_line(err)) from err

    sample_scheduler = _resolve_scheduler_class(config.get("_class_name")).from_config(config)
    noise_scheduler = DDPMScheduler.from_config(config)
    for module in (text_encoder, vae, unet):
        module.requires_grad_(False)
    return DiffusionComponents(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        unet=unet,
        noise_scheduler=noise_scheduler,
        sample_scheduler=sample_scheduler,
        source=source,
    )
