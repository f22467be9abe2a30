"""Method registry: name -> "module:Class", imported only when a method is used.

Keeping the targets as strings keeps ``nsync-bench --help`` and config resolution free of torch
(the lm-evaluation-harness pattern). What the rest of the package asks about a method (negatives, order,
baseline, cost, trigger token) is its torch-free descriptor in ``nsync_bench.config.methods``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from nsync_bench.config.methods import check_method

if TYPE_CHECKING:
    from nsync_bench.methods.base import Method

METHODS: dict[str, str] = {
    "ti": "nsync_bench.methods.textual_inversion:TextualInversion",
    "lora": "nsync_bench.methods.lora:Lora",
    "nsync": "nsync_bench.methods.nsync:NsyncTextualInversion",
    "nsync-lora": "nsync_bench.methods.nsync:NsyncLora",
    "ldm": "nsync_bench.methods.ldm:Ldm",
}


__all__ = ["METHODS", "check_method", "method_class"]


def method_class(name: str) -> type[Method]:
    module_name, _, attr = METHODS[check_method(name)].partition(":")
    return getattr(importlib.import_module(module_name), attr)
