"""Config resolution: layers, --set overrides, teaching errors, protocols, run keys."""

import pytest

from nsync_bench.config.recipes import profile_names, protocol_names, resolve_config
from nsync_bench.config.run_config import parse_override
from nsync_bench.data.run_key import run_key
from nsync_bench.errors import ConfigError, UnknownNameError


def resolve(**kw):
    args = {"style": "toy-pastel", "method": "ti", "seed": 0, "profile": "smoke"} | kw
    return resolve_config(**args)


def test_builtin_profiles_and_protocols_exist():
    assert {"smoke", "sd15", "sd2"} <= set(profile_names())
    assert {"matched", "paper-code"} <= set(protocol_names())


def test_smoke_profile_is_tiny_cpu_and_short():
    config = resolve()
    assert config.model.source == "tiny" and config.model.resolution == 32
    assert config.device == "cpu" and config.model.mixed_precision == "no"
    assert config.train.max_steps <= 60
    assert config.run.protocol == "matched"
    assert config.ti.initializer_token == "painting"  # from datasets/toy-pastel.toml


def test_sd15_profile_has_the_released_codes_settings():
    config = resolve(profile="sd15", protocol="paper-code")
    assert config.model.pretrained == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert config.model.resolution == 512 and config.model.mixed_precision == "fp16"
    assert config.train.max_steps == 8000 and config.train.batch_size == 4
    assert config.train.learning_rate == 5e-4 and config.train.scale_lr
    assert config.train.optimizer == "adamw" and config.train.weight_decay == 0.01
    assert (config.eval.num_inference_steps, config.eval.guidance_scale, config.eval.save_size) == (50, 7.5, 256)
    assert config.prompts.mode == "caption" and config.ti.decay_whole_vocabulary


def test_sd2_profile_points_at_sd2_base():
    assert resolve(profile="sd2").model.pretrained == "stabilityai/stable-diffusion-2-base"


def test_matched_protocol_decays_only_trained_parameters():
    assert not resolve(protocol="matched").ti.decay_whole_vocabulary


def test_set_overrides_are_typed_and_win():
    config = resolve(overrides=["train.max_steps=10", "train.learning_rate=1e-3", "data.flip_p=0",
                                "prompts.mode=templates", "train.max_grad_norm=none"])
    assert config.train.max_steps == 10 and isinstance(config.train.max_steps, int)
    assert config.train.learning_rate == 1e-3
    assert config.data.flip_p == 0.0
    assert config.prompts.mode == "templates"
    assert config.train.max_grad_norm is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a.b=3", ("a.b", 3)), ("a=1.5", ("a", 1.5)), ("a=true", ("a", True)), ("a=word", ("a", "word")),
     ("a='quoted str'", ("a", "quoted str")), ("a=null", ("a", None))],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


def test_unknown_key_names_the_key_and_the_allowed_ones():
    with pytest.raises(ConfigError) as err:
        resolve(overrides=["train.max_stepz=10"])
    message = str(err.value)
    assert "train.max_stepz" in message and "train.max_steps" in message and "Did you mean" in message


def test_unknown_section_lists_sections():
    with pytest.raises(ConfigError, match=r"allowed keys here: .*train"):
        resolve(overrides=["trian.max_steps=10"])


@pytest.mark.parametrize(
    ("override", "fragment"),
    [("train.max_steps=abc", "train.max_steps"), ("train.max_steps=0", "greater than or equal to 1"),
     ("model.mixed_precision=fp8", "'no', 'fp16' or 'bf16'"), ("data.flip_p=2", "data.flip_p")],
)
def test_bad_values_name_the_key_and_what_is_allowed(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        resolve(overrides=[override])


def test_malformed_override_and_run_keys_are_rejected():
    with pytest.raises(ConfigError, match="key=value"):
        resolve(overrides=["train.max_steps"])
    with pytest.raises(ConfigError, match="--seed"):
        resolve(overrides=["run.seed=3"])


@pytest.mark.parametrize(
    ("kwargs", "valid"),
    [({"style": "monet-typo"}, "toy-ink, toy-pastel"), ({"method": "dreambooth"}, "lora, nsync, nsync-lora, ti"),
     ({"profile": "sd99"}, "sd15, sd2, smoke"), ({"protocol": "fair"}, "matched, paper-code")],
)
def test_unknown_names_list_the_valid_ones(kwargs, valid):
    with pytest.raises(UnknownNameError) as err:
        resolve(**kwargs)
    assert valid in str(err.value)


def test_run_key_is_stable_and_sensitive():
    a, b = resolve(), resolve()
    assert run_key(a) == run_key(b) and len(run_key(a)) == 16
    assert run_key(resolve(seed=1)) != run_key(a)
    assert run_key(resolve(overrides=["train.max_steps=11"])) != run_key(a)
    assert run_key(resolve(style="toy-ink")) != run_key(a)


def test_flat_params_cover_every_leaf():
    flat = resolve().flat()
    assert flat["train.max_steps"] == resolve().train.max_steps
    assert flat["run.style"] == "toy-pastel"
    assert all("." in key or key in {"device", "cpu_threads"} for key in flat)


def test_paper_code_protocol_resolves_to_the_released_settings():
    from nsync_bench.training.trainer import effective_learning_rate

    ti = resolve(protocol="paper-code", profile="sd15")
    nsync = resolve(protocol="paper-code", profile="sd15", method="nsync")
    assert (ti.train.batch_size, nsync.train.batch_size) == (4, 2)
    assert (effective_learning_rate(ti), effective_learning_rate(nsync)) == (2e-3, 1e-3)
    for config in (ti, nsync):
        assert config.train.max_steps == 8000 and config.train.optimizer == "adamw"
        assert config.train.weight_decay == 0.01 and config.ti.decay_whole_vocabulary
        assert config.prompts.mode == "caption" and config.nsync.rule == "code-v4.2"
        assert config.run.protocol == "paper-code"


def test_matched_protocol_gives_every_method_the_same_recipe():
    configs = [resolve(protocol="matched", profile="sd15", method=m) for m in ("ti", "lora", "nsync", "nsync-lora")]
    recipes = {(c.train.batch_size, c.train.learning_rate, c.train.scale_lr, c.train.max_steps, c.train.optimizer,
                c.train.weight_decay) for c in configs}
    assert recipes == {(4, 5e-4, True, 8000, "adamw", 0.01)}
    assert all(not c.ti.decay_whole_vocabulary and c.nsync.rule == "paper" for c in configs)


def test_nsync_rule_is_validated():
    with pytest.raises(ConfigError, match=r"code-v4\.2"):
        resolve(method="nsync", overrides=["nsync.rule=v4.2"])
