"""A StableDiffusionPipeline over a component bundle (no safety checker: offline, benchmark use)."""

from __future__ import annotations

from typing import Any

from nsync_bench.models.components import DiffusionComponents


def build_pipeline(components: DiffusionComponents, **replace: Any) -> Any:
    """Assemble a pipeline; ``replace`` swaps parts (e.g. ``text_encoder=...``)."""
    from diffusers import StableDiffusionPipeline

    parts = {
        "vae": components.vae,
        "text_encoder": components.text_encoder,
        "tokenizer": components.tokenizer,
        "unet": components.unet,
        "scheduler": components.sample_scheduler,
    }
    parts.update(replace)
    pipe = StableDiffusionPipeline(
        **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    # diffusers types its lazy top-level exports as its dummy (no-torch) objects, which lack this method
    # diffusers types its lazy top-level exports as the no-torch dummy classes, which lack this method.
    pipe.set_progress_bar_config(disable=True)  # type: ignore[attr-defined]
    return pipe
