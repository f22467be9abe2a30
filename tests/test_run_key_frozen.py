"""Run keys of the built-in profiles are frozen; the real profiles' keys carry the base model's identity.

A finished run is found again by its key, so a key that changes on its own makes every finished run
recompute. The smoke and toy keys below were computed before the base model's identity and the learning
curve's prompt subset joined the key (both leave built-in models and unset options out of it); a change
here must be deliberate (a code change that changes results bumps RUN_KEY_VERSION; a profile change says so
below). Real profiles' keys did change with the revision pin:
docs/running.md says so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nsync_bench.config.recipes import resolve_config
from nsync_bench.data.identity import identity_digest, identity_params, run_data_identity
from nsync_bench.data.run_key import run_key

FROZEN = [  # (profile, style, method, overrides): (config-only key, data digest, key with the data identity)
    (("smoke", "toy-pastel", "nsync", ("train.max_steps=4", "eval.max_prompts=2")),
     ("9f7ffce68ed31862", "4310c2c14feb1b91", "3c52bdcd045f38ec")),  # the README's example run
    (("smoke", "toy-ink", "ti", ()), ("c1f518336af9d6e9", "4d395569681d5442", "b62d77877124ff35")),
    # The toy keys changed deliberately once, when the toy profile began sampling in bf16
    # (eval.cpu_precision = "bf16", issue 22; docs/toy-world.md): before, 06d78240834523a3 / a7e73e378c8e87da
    # (ti) and c607a42cd85fb1af / 47187ceb6c23bf06 (nsync-lora).
    (("toy", "world-dusk", "ti", ()), ("b08eb8d62a35c2ef", "9de2d0cb6a99b8c7", "3a660f77acc8a931")),
    (("toy", "world-dusk", "nsync-lora", ()), ("e1e57a574ab0dc6c", "8e377310e5a02516", "baf51b1ac1142517")),
]


@pytest.mark.parametrize(("coordinates", "keys"), FROZEN, ids=[f"{c[0]}-{c[2]}" for c, _ in FROZEN])
def test_built_in_profiles_keep_their_run_keys(coordinates, keys, data_root):
    profile, style, method, overrides = coordinates
    config_key, data_digest, full_key = keys
    config = resolve_config(style=style, method=method, seed=0, profile=profile, overrides=list(overrides))
    identity = run_data_identity(config, data_root)
    assert "base_model" not in identity  # built-in models have no downloaded weights to identify
    assert run_key(config) == config_key
    # The rendered toy images' bytes depend on the PNG encoder (Pillow's version): where they are the
    # recorded ones, the whole key is frozen too (with other images, it must differ, and does).
    if identity_digest(identity) == data_digest:
        assert run_key(config, identity) == full_key


def test_setting_the_curve_subset_changes_the_key():
    base = resolve_config(style="toy-ink", method="ti", profile="smoke")
    subset = resolve_config(style="toy-ink", method="ti", profile="smoke", overrides=["eval.curve_prompts=4"])
    assert run_key(subset) != run_key(base)


def test_real_profiles_pin_a_revision_that_enters_key_and_params(data_root):
    config = resolve_config(style="toy-pastel", method="ti", profile="sd15")
    assert config.model.revision == "451f4fe16113bff5a5d2269ed5ad43b0592e9a14"
    identity = run_data_identity(config, data_root)
    assert identity["base_model"] == {"name": "stable-diffusion-v1-5/stable-diffusion-v1-5", "source": "hub",
                                      "revision": "451f4fe16113bff5a5d2269ed5ad43b0592e9a14"}
    assert identity_params(identity)["model_identity.revision"] == "451f4fe16113bff5a5d2269ed5ad43b0592e9a14"
    other = resolve_config(style="toy-pastel", method="ti", profile="sd15",
                           overrides=["model.revision=0123456789abcdef0123456789abcdef01234567"])
    assert run_key(other, run_data_identity(other, data_root)) != run_key(config, identity)


def test_a_local_model_folder_is_identified_by_its_files(tmp_path, data_root):
    folder = tmp_path / "my-sd"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"one")
    config = resolve_config(style="toy-pastel", method="ti", profile="sd15",
                            overrides=[f'model.pretrained="{folder}"'])
    first = run_data_identity(config, data_root)["base_model"]
    weights.write_bytes(b"two")
    second = run_data_identity(config, data_root)["base_model"]
    assert first["weights"] != second["weights"] and first["name"] == "my-sd"
    moved = tmp_path / "elsewhere" / "my-sd"
    moved.parent.mkdir()
    Path(folder).rename(moved)
    config_moved = resolve_config(style="toy-pastel", method="ti", profile="sd15",
                                  overrides=[f'model.pretrained="{moved}"'])
    assert run_data_identity(config_moved, data_root)["base_model"]["weights"] == second["weights"]
