"""Textual Inversion: what trains, what stays fixed, determinism and resume."""

import pytest
import torch
from conftest import FAST
from safetensors.torch import load_file

from nsync_bench.config.recipes import resolve_config
from nsync_bench.pipeline.runner import build_training, run


def make_training(data_root, tmp_path, overrides=(), seed=0, protocol=None):
    config = resolve_config(style="toy-pastel", method="ti", seed=seed, profile="smoke", protocol=protocol,
                            overrides=[*FAST, *overrides])
    return build_training(config, data_root=data_root, checkpoint_dir=tmp_path / "ckpt")


def embedding_matrix(method):
    """The effective token-embedding matrix: the base matrix with the learned row written in (what
    ``load_textual_inversion`` builds); the matrix itself when it trains whole (``learned`` is None)."""
    if method.learned is None:
        return method.base_embedding.weight.detach().clone()
    learned = method.learned
    weight = learned.base.weight.detach().clone()
    weight[learned.token_id] = learned.row.detach()[0].to(weight.dtype)
    return weight


def test_only_the_placeholder_row_changes_even_under_weight_decay(data_root, tmp_path):
    # A strong decay makes the check meaningful: without the restore every row would shrink.
    training = make_training(data_root, tmp_path, ["train.weight_decay=0.5"])
    method = training.method
    before = embedding_matrix(method)
    for _ in range(4):
        training.trainer.train_step()
    after = embedding_matrix(method)
    changed = (after != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == [method.placeholder_id]
    assert method.placeholder_id == len(method.components.tokenizer) - 1 == 49408
    # What the text encoder sees is that matrix: the learned row where the token occurs.
    ids = torch.tensor([[49406, method.placeholder_id, 49407]])
    looked_up = method.components.text_encoder.get_input_embeddings()(ids)[0]
    assert torch.equal(looked_up, after[ids[0]])


def test_placeholder_starts_from_the_initializer(data_root, tmp_path):
    method = make_training(data_root, tmp_path).method
    init_id = method.components.tokenizer.convert_tokens_to_ids("painting</w>")
    weight = embedding_matrix(method)
    assert torch.equal(weight[method.placeholder_id], weight[init_id])


def test_decay_whole_vocabulary_reproduces_the_released_code(data_root, tmp_path):
    training = make_training(data_root, tmp_path, ["train.weight_decay=0.5", "ti.decay_whole_vocabulary=true"])
    method, trainer = training.method, training.trainer
    before = embedding_matrix(method)
    for _ in range(3):
        trainer.train_step()
    after = embedding_matrix(method)
    others = torch.ones(len(before), dtype=torch.bool)
    others[method.placeholder_id] = False
    # Zero gradient and zero Adam moments: AdamW only applies w <- w (1 - lr wd) to the other rows.
    shrink = (1 - trainer.learning_rate * 0.5) ** 3
    torch.testing.assert_close(after[others], before[others] * shrink, rtol=1e-6, atol=1e-7)


def test_same_seed_gives_bit_identical_embeddings(data_root, tmp_path):
    def learned(seed, sub):
        training = make_training(data_root, tmp_path / sub, seed=seed)
        for _ in range(3):
            training.trainer.train_step()
        return training.method.learned_embedding()

    first, second, other = learned(0, "a"), learned(0, "b"), learned(1, "c")
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_unknown_or_multi_token_initializer_is_a_teaching_error(data_root, tmp_path):
    from nsync_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="one token"):
        make_training(data_root, tmp_path, ["ti.initializer_token='oil painting'"])


class Crash(Exception):
    """Stands for a hard kill: nothing gets to save a checkpoint."""


@pytest.mark.slow
@pytest.mark.parametrize(("method", "interruption"), [("ti", "ctrl-c"), ("ti", "crash"), ("nsync-lora", "ctrl-c")])
def test_interrupted_run_resumes_bit_identical(run_options, tmp_path, method, interruption):
    def stop_at(step):
        def callback(current):
            if current == step:
                raise KeyboardInterrupt if interruption == "ctrl-c" else Crash
        return callback

    # Ctrl-C at step 4 checkpoints there; a crash at 5 falls back to the periodic checkpoint at 3.
    run_options.callbacks = [stop_at(4 if interruption == "ctrl-c" else 5)]
    with pytest.raises(KeyboardInterrupt if interruption == "ctrl-c" else Crash):
        run(style="toy-pastel", method=method, overrides=FAST, options=run_options)
    run_dir = next((run_options.runs_dir).rglob("checkpoints")).parent
    steps = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert steps[-1] == ("checkpoint-0000004" if interruption == "ctrl-c" else "checkpoint-0000003")

    run_options.callbacks = []
    resumed = run(style="toy-pastel", method=method, overrides=FAST, options=run_options)
    # A separate store too: the first store already knows this run key as finished.
    run_options.runs_dir = tmp_path / "fresh"
    run_options.tracking_uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    fresh = run(style="toy-pastel", method=method, overrides=FAST, options=run_options)

    assert resumed.run_key == fresh.run_key
    a = load_file(resumed.run_dir / resumed.adapter)
    b = load_file(fresh.run_dir / fresh.adapter)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("00000.png", "00001.png"):
        resumed_png = (resumed.run_dir / "eval/images" / name).read_bytes()
        assert resumed_png == (fresh.run_dir / "eval/images" / name).read_bytes()
