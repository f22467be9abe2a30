"""NSYNC prompts its branches from one place: overriding prompts.mode or prompts.train_template changes
the positive, negative and anchor branches alike; the v5.x rules negate the style phrase only."""

import pytest
from helpers import training_for

from nsync_bench.errors import ConfigError
from nsync_bench.methods.base import STYLE_TEMPLATES
from nsync_bench.methods.nsync import negated_template

TOKEN = "<nsync-style>"


def branch_prompts(training, micro_step=0):
    branches = training.method._branches(training.trainer.batches.batch(micro_step), micro_step)
    return [prompts for _, prompts, _ in branches]


def test_negated_template_negates_the_style_phrase_only():
    assert negated_template("{caption} in the style of {token}") == "{caption} not in the style of {token}"
    assert negated_template("a photo of {caption}, in the style of {token}, 4k") == (
        "a photo of {caption}, not in the style of {token}, 4k")
    with pytest.raises(ConfigError, match=r"prompts\.train_template"):
        negated_template("{caption}, {token} style")


@pytest.mark.parametrize("method", ["nsync", "nsync-lora"])
def test_default_prompts_are_unchanged(data_root, tmp_path, method):
    """The defaults prompt exactly as before: "{caption} in the style of S*" / "... not in the style of S*"."""
    token = TOKEN if method == "nsync" else "sks"
    training = training_for(method, data_root, tmp_path, ["nsync.rule=code-v4.2"])
    batch = training.trainer.batches.batch(0)
    positive, negative = branch_prompts(training)
    assert positive == negative == [f"{c} in the style of {token}" for c in batch.captions]
    training = training_for(method, data_root, tmp_path / "v5", ["nsync.rule=code-v5.0"])
    positive, negative = branch_prompts(training)
    assert negative == [f"{c} not in the style of {token}" for c in batch.captions]
    assert positive == [f"{c} in the style of {token}" for c in batch.captions]


@pytest.mark.parametrize("rule", ["paper", "code-v4.2", "code-v5.0", "code-v5.1"])
def test_overriding_the_train_template_changes_every_branch(data_root, tmp_path, rule):
    template = "a photo of {caption}, in the style of {token}, high detail"
    training = training_for("nsync", data_root, tmp_path, [f"nsync.rule={rule}", f"prompts.train_template={template}"])
    batch = training.trainer.batches.batch(0)
    prompts = branch_prompts(training)
    positive, negative = prompts[0], prompts[1]
    assert positive == [f"a photo of {c}, in the style of {TOKEN}, high detail" for c in batch.captions]
    if rule.startswith("code-v5"):
        assert negative == [f"a photo of {c}, not in the style of {TOKEN}, high detail" for c in batch.captions]
    else:
        assert negative == positive  # each synthetic twin gets its positive's prompt
    if rule == "code-v5.1":  # the anchor branch prompts its own captions with the same template
        anchor = prompts[2]
        assert anchor and all(p.startswith("a photo of ") and p.endswith(f", in the style of {TOKEN}, high detail")
                              for p in anchor)


@pytest.mark.parametrize("rule", ["code-v4.2", "code-v5.1"])
def test_templates_mode_prompts_every_branch_with_the_positives_templates(data_root, tmp_path, rule):
    training = training_for("nsync", data_root, tmp_path, [f"nsync.rule={rule}", "prompts.mode=templates"])
    for micro_step in (0, 1):
        prompts = branch_prompts(training, micro_step)
        positive, negative = prompts[0], prompts[1]
        assert set(positive) <= {t.format(TOKEN) for t in STYLE_TEMPLATES}  # the classic templates
        if rule == "code-v5.1":
            assert negative == [p.replace(f" in the style of {TOKEN}", f" not in the style of {TOKEN}")
                                for p in positive]
            assert set(prompts[2]) <= {t.format(TOKEN) for t in STYLE_TEMPLATES}
        else:
            assert negative == positive  # the same template picks as the positives they pair with


def test_a_v5_rule_refuses_a_template_without_the_style_phrase(data_root, tmp_path):
    with pytest.raises(ConfigError, match=r"code-v5\.0"):
        training_for("nsync", data_root, tmp_path,
                     ["nsync.rule=code-v5.0", "prompts.train_template={caption}, {token}"])
    training = training_for("nsync", data_root, tmp_path / "ok", ["nsync.rule=code-v4.2",
                                                                 "prompts.train_template={caption}, {token}"])
    positive, negative = branch_prompts(training)
    assert positive == negative
