"""What gan-metrics-pytorch (the FID/KID code NSYNC used) does to image counts, and mode labels.

gan-metrics-pytorch embeds a folder in whole batches only: with batch size ``b`` (its
``--batch-size``, 50 by default) it runs ``N // b`` batches, so the last ``N mod b`` images are
never embedded; a set smaller than one batch shrinks the batch to ``N`` and is used whole.
Under ``inception_mode = "nsync-legacy"`` FID and KID reproduce that, taking the first images of
each set in this project's file order (sorted by name, see :func:`metrics.images.list_image_files`;
the reference globs in file-system order, which is not reproducible across machines).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from nsync_bench.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from nsync_bench.config.run_config import MetricsConfig

log = logging.getLogger(__name__)

INCEPTION_MODE_LABELS: dict[str, str] = {
    "clean": "clean-fid's default (PIL bicubic resize, TF-FID Inception)",
    "legacy_pytorch": "clean-fid's pytorch-fid mode (bilinear resize, TF-FID Inception weights)",
    "nsync-legacy": "gan-metrics-pytorch as the paper ran it (torchvision Inception, bilinear resize, "
                    "bootstrapped FID, whole batches only)",
}

_MODE_PATTERN = re.compile(r"inception_mode=([A-Za-z0-9_-]+)")


def legacy_used_count(n_images: int, batch_size: int) -> int:
    """How many of ``n_images`` gan-metrics-pytorch embeds with ``batch_size``: ``N // b * b``, b capped at N."""
    if batch_size < 1:
        raise ConfigError(f"metrics.legacy_batch_size must be a positive integer, got {batch_size!r}; the "
                          "released command uses 50.")
    if n_images <= 0:
        return 0
    batch = min(batch_size, n_images)
    return n_images // batch * batch


def inception_mode_id(config: MetricsConfig) -> str:
    """The Inception-mode part of a FID/KID estimator id: ``inception_mode=<mode>[,legacy_batch=<b>]``."""
    mode = f"inception_mode={config.inception_mode}"
    if config.inception_mode == "nsync-legacy":
        mode += f",legacy_batch={config.legacy_batch_size}"
    return mode


def legacy_subset(gen: np.ndarray, real: np.ndarray, config: MetricsConfig, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The Inception feature rows FID/KID use: all, or under nsync-legacy the first whole batches of each set."""
    if config.inception_mode != "nsync-legacy":
        return gen, real
    n_gen, n_real, batch_size = len(gen), len(real), config.legacy_batch_size
    used_gen, used_real = legacy_used_count(n_gen, batch_size), legacy_used_count(n_real, batch_size)
    if (used_gen, used_real) != (n_gen, n_real):
        log.warning("nsync-legacy %s uses the first %d of %d generated and %d of %d real images (whole batches of "
                    "%d, as gan-metrics-pytorch embeds them)", name.upper(), used_gen, n_gen, used_real, n_real,
                    batch_size)
    return gen[:used_gen], real[:used_real]


def inception_mode_of(implementation: str) -> str | None:
    """The Inception mode named in a FID/KID implementation id (``...inception_mode=<mode>...``), if any."""
    match = _MODE_PATTERN.search(implementation or "")
    return match.group(1) if match else None


def inception_mode_note(implementations: dict[str, str]) -> str | None:
    """One sentence saying which Inception mode the FID/KID numbers of a table use (None without FID/KID)."""
    modes = {m: inception_mode_of(i) for m, i in implementations.items() if m in ("fid", "kid")}
    if not modes:
        return None
    found = sorted({mode or "unknown" for mode in modes.values()})
    names = " and ".join(m.upper() for m in sorted(modes))
    if len(found) > 1:
        return f"{names} use different Inception modes ({', '.join(found)}); they are not comparable."
    mode = found[0]
    label = INCEPTION_MODE_LABELS.get(mode, "mode not recorded in the implementation id")
    return f"{names}: Inception mode {mode} — {label}."
