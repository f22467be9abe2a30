"""Method registry: name -> "module:Class", imported only when a method is used.

Keeping the targets as strings keeps ``nsync-bench --help`` and config resolution free of torch
(the lm-evaluation-harness pattern).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from nsync_bench.errors import unknown_name

if TYPE_CHECKING:
    from nsync_bench.methods.base import Method

METHODS: dict[str, str] = {
    "ti": "nsync_bench.methods.textual_inversion:TextualInversion",
    "lora": "nsync_bench.methods.lora:Lora",
    "nsync": "nsync_bench.methods.nsync:NsyncTextualInversion",
    "nsync-lora": "nsync_bench.methods.nsync:NsyncLora",
    # The untrained base model prompted with the style's human name (the paper's "LDM" column).
    "ldm": "nsync_bench.methods.ldm:Ldm",
}


def check_method(name: str) -> str:
    if name not in METHODS:
        raise unknown_name("method", name, METHODS)
    return name


def method_class(name: str) -> type[Method]:
    module_name, _, attr = METHODS[check_method(name)].partition(":")
    return getattr(importlib.import_module(module_name), attr)
