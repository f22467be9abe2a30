"""The run key: a hash of the resolved config and of the data identity a run consumes.

It lives with the data identity, above ``config/`` in the layers (docs/architecture.md): the config
is a plain value here, and the data identity a dict from :func:`nsync_bench.data.identity.run_data_identity`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from nsync_bench.config.run_config import RunConfig
from nsync_bench.data.identity import identity_for_key

# Bump when a change of code changes results for an unchanged config: old run keys then miss.
RUN_KEY_VERSION = 1
# Settings added after run keys were published, at the default that reproduces what runs did before
# the setting existed: at that value they stay out of the key, so no finished run is recomputed for them.
KEY_NEUTRAL_DEFAULTS: dict[str, Any] = {"eval.curve_prompts": None, "eval.cpu_precision": "fp32"}


def key_config(config: RunConfig) -> dict[str, Any]:
    """The config as the run key hashes it: everything but :data:`KEY_NEUTRAL_DEFAULTS` at their default."""
    tree = config.model_dump(mode="json")
    for dotted, neutral in KEY_NEUTRAL_DEFAULTS.items():
        section, _, name = dotted.rpartition(".")
        node = tree
        for part in section.split("."):
            node = node[part]
        if node.get(name) == neutral:
            del node[name]
    return tree


def run_key(config: RunConfig, data: dict[str, Any] | None = None) -> str:
    """A 16-hex-digit hash of the resolved config and, for runs, the data identity: equal keys mean equal runs.

    ``data`` is :func:`nsync_bench.data.identity.run_data_identity` (content digests of the images,
    captions and captioner a run consumes); without it the key covers the config alone.
    """
    record: dict[str, Any] = {"v": RUN_KEY_VERSION, "config": key_config(config)}
    if data is not None:
        record["data"] = identity_for_key(data)
    payload = json.dumps(record, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
