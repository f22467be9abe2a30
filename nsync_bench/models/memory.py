"""Memory knobs a GPU user expects, applied to the components before a method wraps them.

* ``train.gradient_checkpointing``: the UNet and the text encoder recompute their activations in
  the backward pass instead of storing them (diffusers' ``--gradient_checkpointing``). Results are
  unchanged (tested on CPU to float tolerance); the step costs about one more forward.
* Frozen modules in the compute dtype: the UNet and VAE always are (``load_components``); the text
  encoder too when the method does not train it (LoRA, NSYNC-LoRA, applied by the method after the
  negative set is rendered, so that set never depends on which method rendered it first), as
  diffusers' LoRA example does with ``weight_dtype``. TI trains a row of it: fp32. No-op in fp32.

``channels_last`` and ``torch.compile`` are not offered: neither was measured to help here (no
GPU was available to measure them; the GPU check is where to add them if it shows a gain).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from nsync_bench.config.run_config import RunConfig
    from nsync_bench.models.components import DiffusionComponents

log = logging.getLogger(__name__)



def text_encoder_dtype(method: str, weight_dtype: torch.dtype) -> torch.dtype:
    """The text encoder's storage dtype for ``method``: the compute dtype unless the method trains it."""
    import torch

    from nsync_bench.config.methods import METHOD_INFO

    info = METHOD_INFO.get(method)
    return weight_dtype if info is not None and info.frozen_text_encoder else torch.float32


def apply_memory_knobs(components: DiffusionComponents, config: RunConfig) -> None:
    """Gradient checkpointing for the UNet and the text encoder, if asked (in place)."""
    if config.train.gradient_checkpointing:
        components.unet.enable_gradient_checkpointing()
        # transformers checkpoints only modules in train mode; CLIP's text encoder has no dropout,
        # so train mode changes nothing else. Non-reentrant: TI's gradient enters through the inputs.
        components.text_encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        components.text_encoder.train()
        log.info("gradient checkpointing on for the UNet and the text encoder")
