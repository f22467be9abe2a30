"""Checks before the first training step: what evaluation and metrics will need, in seconds.

A run that can only fail (or score nonsense) after training should fail before it, with the
fix: on ``sd15`` training takes hours. This is the one pre-training check (:func:`check_before_training`);
checked here:

* images: the style's validation (data/validate.py: unreadable, truncated, too small, split leaks);
* captions: training needs them under ``prompts.mode=caption``, NSYNC's rendered negative set
  always (its prompts are the train captions), and evaluation always (its prompts are the test
  captions, whatever ``prompts.mode`` is);
* the batch: no larger than the training set (a larger one repeats images and only costs memory);
* image counts: FID and KID need at least two images in each set (their specs' ``min_images``: a
  covariance and an unbiased MMD need two samples); evaluation generates one image per test caption,
  up to ``eval.max_prompts``;
* downloads (pipeline.readiness): the base model and every metric extractor's weights are here, or the
  run can fetch them (online, identity pinned: metric weights are then fetched now, before training);
  offline, a missing one stops the run with the command that fetches it.

Fewer than a metric's ``reliable_images`` (FID and KID: 50) per set is allowed but flagged: FID and
KID from so few images are dominated by estimator bias and noise (the smoke profile always is). The
run logs the warning as the tag ``metric.<name>.warning``; the report repeats it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nsync_bench.config.run_config import RunConfig
from nsync_bench.data.styles import StyleData
from nsync_bench.errors import ConfigError, DataError
from nsync_bench.metrics.registry import specs

log = logging.getLogger(__name__)


def evaluation_counts(config: RunConfig, n_test: int) -> tuple[int, int]:
    """(generated, real) image counts of a run's evaluation."""
    generated = n_test if config.eval.max_prompts is None else min(config.eval.max_prompts, n_test)
    return generated, n_test


def small_set_warnings(names: list[str], n_generated: int, n_real: int) -> dict[str, str]:
    """``{metric: warning}`` for a metric computed from fewer images per set than its spec's ``reliable_images``
    (FID and KID: 50)."""
    warnings, table = {}, specs()
    for name in names:
        reliable = table[name].reliable_images
        if min(n_generated, n_real) < reliable:
            warnings[name] = (f"{name.upper()} from {n_generated} generated and {n_real} real images (fewer than "
                              f"{reliable} per set): dominated by estimator bias and noise; compare with care")
    return warnings


def _missing_captions(images: list, split: str, style: str, why: str) -> DataError:
    from nsync_bench.pipeline.readiness import caption_command, caption_estimate

    missing = [img.path.name for img in images if not img.caption]
    return DataError(
        f"{len(missing)} {split} image(s) of style {style!r} have no caption, e.g. {missing[:3]}; {why}. Fix: write a "
        f".txt beside each image, or run `{caption_command(style)}` (train and test splits; "
        f"{caption_estimate(len(missing))} for this split). Nothing was trained.")


def check_downloads(config: RunConfig, weights_dir: Path | None = None, progress: object = None) -> None:
    """The base model and the metric weights: here, or fetchable by the run (metric weights are fetched now);
    else a teaching error naming every missing one and its command, before anything is trained."""
    from nsync_bench.errors import ModelNotAvailableError
    from nsync_bench.models.hub import is_offline
    from nsync_bench.pipeline.readiness import RunPlan, base_model_need, blocking_message, fetch_downloads, weight_needs

    spec = config.run
    plan = RunPlan(f"{spec.style}/{spec.method}/seed{spec.seed} ({spec.profile})", is_offline())
    plan.needs = [n for n in (base_model_need(config), *weight_needs(config, weights_dir)) if n is not None]
    if plan.blocking():
        raise ModelNotAvailableError(blocking_message(plan))
    fetch_downloads(plan, weights_dir, progress)


def check_before_training(config: RunConfig, data: StyleData | Path, weights_dir: Path | None = None,
                          progress: object = None) -> None:
    """The one check a run makes before anything is trained: a teaching error for bad images (the style's
    validation: corrupt, too small, duplicated across splits), missing captions, image counts the metrics
    cannot use, and missing base-model or metric weights — anything training or evaluation would fail on.
    ``data``: the run's resolved style data (or the data root to resolve it under)."""
    from nsync_bench.config.methods import method_info
    from nsync_bench.data.styles import as_style_data
    from nsync_bench.data.validate import check_before_run

    resolved = as_style_data(config.run.style, data)
    method = method_info(config.run.method)
    style, style_dir, train, test = resolved.info, resolved.style_dir, resolved.train, resolved.test
    check_before_run(style.name, resolved.data_root, config.model.resolution)  # bad images stop here
    if not all(img.caption for img in test):
        raise _missing_captions(test, "test", style.name, "evaluation prompts are the test captions "
                                "(eval.prompt_template) whatever prompts.mode is")
    if not all(img.caption for img in train):
        if config.prompts.mode == "caption":
            raise _missing_captions(train, "train", style.name, "prompts.mode=caption trains on them (or use "
                                    "--set prompts.mode=templates)")
        if method.needs_negatives and not config.nsync.negatives_dir:
            raise _missing_captions(train, "train", style.name, f"{config.run.method}'s negative set is rendered "
                                    "from the train captions (or pass your own with --set nsync.negatives_dir=DIR)")
    if method.trains and config.train.batch_size > len(train):
        # Legal for the sampler (a batch spans epochs), but it only repeats images: memory grows with the batch
        # (batch_size=100000 on the smoke profile was killed for memory), the gradient does not improve.
        raise ConfigError(
            f"train.batch_size = {config.train.batch_size} is larger than the {len(train)} training images of style "
            f"{style.name!r}: each batch would repeat images. Fix: --set train.batch_size={len(train)} or less (for "
            "a larger effective batch, train.gradient_accumulation_steps). Nothing was trained.")
    n_generated, n_real = evaluation_counts(config, len(test))
    table = specs()
    hard_minimum = max((table[n].min_images for n in config.metrics.names), default=1)
    needy = [n for n in config.metrics.names if table[n].min_images > 1]
    if needy and n_real < hard_minimum:
        raise DataError(
            f"the test split of style {style.name!r} has {n_real} image(s), but {'/'.join(n.upper() for n in needy)} "
            f"need at least {hard_minimum}. Fix: add test images to {style_dir / style.test_split} (or re-import with "
            f"a larger --test-fraction), or drop them with --set metrics.names='[\"cmmd\", \"csd\"]'. Nothing was "
            "trained.")
    if needy and n_generated < hard_minimum:
        raise ConfigError(
            f"eval.max_prompts = {config.eval.max_prompts} gives {n_generated} evaluation image(s), but "
            f"{'/'.join(n.upper() for n in needy)} need at least {hard_minimum} (a covariance needs two samples). "
            f"Fix: --set eval.max_prompts={hard_minimum} or more (or None for all {n_real} test captions), or drop "
            f"them with --set metrics.names='[\"cmmd\", \"csd\"]'. Nothing was trained.")
    for warning in small_set_warnings(list(config.metrics.names), n_generated, n_real).values():
        log.warning("%s", warning)
    check_downloads(config, weights_dir, progress)
