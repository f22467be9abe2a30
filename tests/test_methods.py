"""NSYNC and LoRA as training methods: shared seeds, what trains, the rule applied, adapters reload."""

import mlflow
import pytest
import torch
from conftest import FAST
from helpers import assert_regenerates, training_for
from mlflow.tracking import MlflowClient

from nsync_bench.config.recipes import resolve_config
from nsync_bench.methods.nsync import refine_gradient
from nsync_bench.models.diffusers_pipeline import build_pipeline
from nsync_bench.models.tiny import build_tiny_components
from nsync_bench.pipeline.runner import run


@pytest.mark.parametrize(("base", "nsync"), [("ti", "nsync"), ("lora", "nsync-lora")])
@pytest.mark.parametrize("fused", [False, True])
def test_nsync_positive_gradient_equals_the_baselines_gradient_at_step_one(data_root, tmp_path, base, nsync, fused):
    """The shared-seed contract: same batch, flips, latents, noise and timesteps on the positive branch.

    Exactly equal with separate passes; the fused pass sums in another order (float tolerance)."""
    baseline = training_for(base, data_root, tmp_path)
    batch = baseline.trainer.batches.batch(0)
    baseline.method.compute_gradients(batch, 0)
    params = baseline.method.rule_parameters()
    expected = torch.cat([v.flatten() for v in baseline.method.rule_vectors([p.grad for p in params])])

    ours = training_for(nsync, data_root, tmp_path, [f"nsync.fused={str(fused).lower()}"])
    ours.method.compute_gradients(ours.trainer.batches.batch(0), 0)
    if fused:
        torch.testing.assert_close(ours.method.last_gradients["pos"], expected.double(), rtol=1e-5, atol=1e-8)
    else:
        assert torch.equal(ours.method.last_gradients["pos"], expected.double())


def test_nsync_writes_the_rules_update_into_the_gradient(data_root, tmp_path):
    training = training_for("nsync", data_root, tmp_path)
    method = training.method
    logs = method.compute_gradients(training.trainer.batches.batch(0), 0)
    grads = method.last_gradients
    expected = refine_gradient(grads["pos"], grads["neg"], rule="paper")
    written = method.rule_vectors([p.grad for p in method.rule_parameters()])[0].double()
    torch.testing.assert_close(written, expected, rtol=1e-6, atol=1e-12)
    assert abs(float(written @ grads["neg"])) < 1e-5 * float(written.norm() * grads["neg"].norm())
    assert {"grad/norm_pos", "grad/norm_neg", "grad/cos_pos_neg", "grad/norm_update", "train/loss_pos",
            "train/loss_neg"} <= set(logs)
    # The logged diagnostics are those of the gradients the rule saw, not just plausible numbers.
    pos, neg, update = grads["pos"], grads["neg"], grads["update"]
    assert logs["grad/norm_pos"] == pytest.approx(float(pos.norm()), rel=1e-12)
    assert logs["grad/norm_neg"] == pytest.approx(float(neg.norm()), rel=1e-12)
    assert logs["grad/norm_update"] == pytest.approx(float(update.norm()), rel=1e-12)
    assert logs["grad/cos_pos_neg"] == pytest.approx(float(pos @ neg / (pos.norm() * neg.norm())), rel=1e-12)
    assert logs["grad/norm_ratio_neg_pos"] == pytest.approx(float(neg.norm() / pos.norm()), rel=1e-12)
    assert 0 < logs["grad/norm_update"] < logs["grad/norm_pos"]  # removing a component shortens the vector


def test_nsync_lora_scopes_differ_and_global_is_orthogonal_over_all_parameters(data_root, tmp_path):
    results = {}
    for scope in ("global", "per_tensor"):
        training = training_for("nsync-lora", data_root, tmp_path / scope, [f"nsync.projection_scope={scope}"])
        training.method.compute_gradients(training.trainer.batches.batch(0), 0)
        results[scope] = training.method.last_gradients
    g = results["global"]
    assert abs(float(g["update"] @ g["neg"])) < 1e-6 * float(g["update"].norm() * g["neg"].norm())
    assert not torch.allclose(results["global"]["update"], results["per_tensor"]["update"])
    assert torch.equal(results["global"]["pos"], results["per_tensor"]["pos"])


def test_anchor_rule_runs_an_anchor_branch_and_uses_its_gradient(data_root, tmp_path):
    """code-v5.1 = (a + (a+b+c) + (a+b)) / 3: the anchor gradient c must really enter the update."""
    training = training_for("nsync", data_root, tmp_path, ["nsync.rule=code-v5.1"])
    method = training.method
    batch = training.trainer.batches.batch(0)
    assert method.negative_prompts(["a cat"]) == ["a cat not in the style of <nsync-style>"]
    branches = method._branches(batch, 0)
    assert len(branches) == 3  # positive, negative, anchor
    anchor_prompts = branches[2][1]
    assert all(p.endswith(" in the style of <nsync-style>") and " not in " not in p for p in anchor_prompts)
    # Each branch's gradient on its own (separate passes; the default fused pass must agree).
    _, grads = method._separate_passes(branches)
    a, b, c = (g[0].double().flatten() for g in grads)
    assert float(c.norm()) > 0 and not torch.allclose(c, a)
    logs = method.compute_gradients(batch, 0)
    update = method.last_gradients["update"]
    expected = (a + (a + b + c) + (a + b)) / 3
    # Fused and separate passes sum in different orders: float32 agreement relative to the largest entry.
    scale = float(expected.abs().max())
    torch.testing.assert_close(update, expected, rtol=1e-5, atol=1e-5 * scale)
    # Without the anchor term the update would be a + 2b/3; it is off from that by c/3.
    torch.testing.assert_close(update - (a + 2 * b / 3), c / 3, rtol=1e-4, atol=1e-5 * scale)
    assert float((update - (a + 2 * b / 3)).norm()) > 0.1 * float(c.norm()) / 3 > 1e-5 * scale  # c is not noise
    assert logs["grad/norm_update"] == pytest.approx(float(expected.norm()), rel=1e-5)


def test_lora_trains_only_lora_parameters(data_root, tmp_path):
    training = training_for("lora", data_root, tmp_path)
    unet = training.method.components.unet
    base_before = {n: p.detach().clone() for n, p in unet.named_parameters() if "lora_" not in n}
    lora_before = {n: p.detach().clone() for n, p in unet.named_parameters() if "lora_" in n}
    text_before = [p.detach().clone() for p in training.method.components.text_encoder.parameters()]
    for _ in range(2):
        training.trainer.train_step()
    after = dict(unet.named_parameters())
    assert all(torch.equal(after[n], p) for n, p in base_before.items())
    assert any(not torch.equal(after[n], p) for n, p in lora_before.items())
    assert all(torch.equal(a, b) for a, b in zip(training.method.components.text_encoder.parameters(), text_before))
    # 4 projections x (A, B) x (self, cross) attention x 4 transformer blocks (down, mid, 2 up)
    assert len(lora_before) == 4 * 2 * 2 * 4


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "nsync-lora"])
def test_lora_adapters_reload_with_diffusers_and_reproduce_the_images(run_options, method):
    # alpha != rank: the saved metadata must carry the alpha / r scale to the loader.
    overrides = [*FAST, "lora.alpha=8"]
    result = run(style="toy-ink", method=method, seed=0, overrides=overrides, options=run_options)
    config = resolve_config(style="toy-ink", method=method, seed=0, profile="smoke", overrides=overrides)
    torch.set_num_threads(config.cpu_threads)
    pipe = build_pipeline(build_tiny_components(seed=config.model.tiny_seed, resolution=config.model.resolution))
    pipe.load_lora_weights(str(result.run_dir / "adapter"))
    assert_regenerates(pipe, result.run_dir, config, "in the style of sks")


@pytest.mark.slow
def test_all_four_methods_on_both_toy_styles_log_to_mlflow(run_options):
    for style in ("toy-pastel", "toy-ink"):
        for method in ("ti", "lora", "nsync", "nsync-lora"):
            run(style=style, method=method, seed=0, overrides=FAST, options=run_options)
    mlflow.set_tracking_uri(run_options.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["test"])
    assert len(runs) == 8 and set(runs["status"]) == {"FINISHED"}
    assert set(runs["tags.method"]) == {"ti", "lora", "nsync", "nsync-lora"}
    assert set(runs["tags.protocol"]) == {"matched"}
    client = MlflowClient(run_options.tracking_uri)
    for _, row in runs[runs["tags.method"].str.startswith("nsync")].iterrows():
        for name in ("grad/norm_pos", "grad/norm_neg", "grad/cos_pos_neg", "grad/norm_update", "train/loss_pos",
                     "train/loss_neg"):
            assert len(client.get_metric_history(row["run_id"], name)) == 6, name
        assert row["params.nsync.rule"] == "paper"
