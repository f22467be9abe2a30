"""One descriptor per method, torch-free: what every layer may ask about a method without importing it.

The method's code lives in ``methods/`` (above ``config/`` in the layers, docs/architecture.md), named by
its ``"module:Class"`` row in ``nsync_bench.methods.METHODS``; everything else that used to keep its own list
(the runner, data identity, readiness, the sweep's dry run and cost ratios, the report's order and pairs,
the model card) reads the row here. Adding a method: one module in ``methods/``, one row there, one row
here, and a config section if it has settings (docs/extending.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nsync_bench.errors import unknown_name


@dataclass(frozen=True)
class MethodInfo:
    name: str
    # Trains on a negative set too (NSYNC): the runner renders one and calls the method's attach_negatives.
    needs_negatives: bool = False
    # False for references that train nothing (ldm): no batches, latents or trainer.
    trains: bool = True
    # The method a report compares it against by default (NSYNC vs the method it extends), or None.
    baseline: str | None = None
    # Step time at equal batch relative to TI (`nsync-bench bench --only training`, docs/scale.md), for the
    # sweep's dry-run cost estimate; None for a method that trains nothing.
    cost_vs_ti: float | None = None
    # The text encoder is frozen (its outputs only feed the trained UNet adapter), so it is stored in the compute
    # dtype (models/memory.py); False keeps it fp32 (TI trains one of its rows).
    frozen_text_encoder: bool = False
    # The adapter's kind as the model card tags it, and the dotted config setting holding its trigger token
    # (export/model_card.py); the defaults are Textual Inversion's.
    adapter_kind: str = "textual_inversion"
    trigger_setting: str = "ti.placeholder_token"

    def trigger_token(self, config: dict[str, Any]) -> str:
        """The trigger token of a run whose resolved config (as a dict) is ``config``."""
        section, _, key = self.trigger_setting.partition(".")
        return str(config[section][key])


# In display order (the report's rows and plots): the untrained reference first, each base method before
# the NSYNC variant that extends it.
METHOD_INFO: dict[str, MethodInfo] = {info.name: info for info in (
    # The untrained base model prompted with the style's human name (the paper's "LDM" column). Its run card
    # keeps the TI defaults it has always had.
    MethodInfo("ldm", trains=False),
    MethodInfo("ti", cost_vs_ti=1.0),
    MethodInfo("nsync", needs_negatives=True, baseline="ti", cost_vs_ti=1.78),
    MethodInfo("lora", cost_vs_ti=1.18, frozen_text_encoder=True, adapter_kind="lora",
               trigger_setting="lora.style_token"),
    MethodInfo("nsync-lora", needs_negatives=True, baseline="lora", cost_vs_ti=2.26, frozen_text_encoder=True,
               adapter_kind="lora", trigger_setting="lora.style_token"),
)}


def check_method(name: str) -> str:
    if name not in METHOD_INFO:
        raise unknown_name("method", name, METHOD_INFO)
    return name


def method_info(name: str) -> MethodInfo:
    return METHOD_INFO[check_method(name)]


def method_order(names: set[str] | list[str]) -> list[str]:
    """``names`` in display order; methods the table does not know last, sorted."""
    present = set(names)
    return [m for m in METHOD_INFO if m in present] + sorted(present - set(METHOD_INFO))


def default_pairs() -> tuple[tuple[str, str], ...]:
    """(candidate, baseline) of every method that declares a baseline, in display order."""
    return tuple((info.name, info.baseline) for info in METHOD_INFO.values() if info.baseline is not None)
