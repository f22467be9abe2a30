"""Loading a run's base components: tiny seeded ones (smoke), pretrained ones (hub id / local dir), or a
plugin's (``model_sources`` in a package's ``plugins.toml``: the toy world's), on the run's device and precision."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from nsync_bench.config.run_config import ModelConfig, RunConfig
    from nsync_bench.models.components import DiffusionComponents
    from nsync_bench.models.precision import Precision


def load_components(model: ModelConfig, device: torch.device, weight_dtype: torch.dtype) -> DiffusionComponents:
    """Build or load the components, move them to ``device``; frozen UNet/VAE in ``weight_dtype``.

    The text encoder stays fp32: Textual Inversion trains one of its rows.
    """
    from nsync_bench.errors import ConfigError

    if model.source == "tiny":
        from nsync_bench.models.tiny import build_tiny_components

        components = build_tiny_components(seed=model.tiny_seed, resolution=model.resolution)
    elif model.source != "pretrained":  # a plugin's loader, given model.pretrained (toy world: None = committed)
        from nsync_bench.config.plugins import load_plugin

        components = load_plugin("model_sources", model.source, "model source")(model.pretrained)
    else:
        if not model.pretrained:
            raise ConfigError("model.source = 'pretrained' needs model.pretrained (a hub id or a local directory).")
        from nsync_bench.models.pretrained import load_pretrained_components

        components = load_pretrained_components(model.pretrained, revision=model.revision)
    for module in (components.unet, components.vae):
        # Cast only when needed: diffusers warns on every .to(dtype) call, even a no-op one.
        if module.dtype == weight_dtype:
            module.to(device=device)
        else:
            module.to(device=device, dtype=weight_dtype)
    components.text_encoder.to(device=device)
    return components


def components_for(config: RunConfig) -> tuple[torch.device, Precision, DiffusionComponents]:
    """Device, precision and base components of a run, with the run's CPU thread count applied."""
    import torch

    from nsync_bench.models.device import resolve_device
    from nsync_bench.models.precision import Precision

    device = resolve_device(config.device)
    if config.cpu_threads is not None:
        torch.set_num_threads(config.cpu_threads)
    precision = Precision(config.model.mixed_precision, device)
    components = load_components(config.model, device, precision.weight_dtype)
    from nsync_bench.models.memory import apply_memory_knobs

    apply_memory_knobs(components, config)
    return device, precision, components
