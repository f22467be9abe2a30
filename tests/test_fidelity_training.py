"""paper-code's training follows the release: independent negative flips, fp16 overflow skips, LoRA clipping."""

import pytest
import torch
from helpers import training_for

from nsync_bench.config.recipes import resolve_config
from nsync_bench.errors import TrainingError
from nsync_bench.models.precision import Precision

CPU = torch.device("cpu")


def _scaled(init_scale: float = 2.0**10) -> Precision:
    """fp32 compute with an enabled (CPU) loss scaler: the fp16 step logic, testable without a GPU."""
    return Precision("no", CPU, scaler=torch.amp.GradScaler("cpu", init_scale=init_scale))


# -- item 3: the negative branch's flip ------------------------------------------------------------
def test_negative_flips_are_independent_under_paper_code_and_paired_under_matched(data_root, tmp_path):
    paper = training_for("nsync", data_root, tmp_path / "paper", protocol="paper-code")
    paired = training_for("nsync", data_root, tmp_path / "paired", ["nsync.negative_flip=paired"],
                          protocol="paper-code")
    matched = training_for("nsync", data_root, tmp_path / "matched")
    assert paper.method.config.nsync.negative_flip == "independent"
    assert matched.method.config.nsync.negative_flip == "paired"
    counts = {(p, n): 0 for p in (False, True) for n in (False, True)}
    for k in range(300):
        batch = paper.trainer.batches.batch(k)
        # The negative draw has a stream of its own: the positive batch is untouched by the choice.
        twin = paired.trainer.batches.batch(k)
        assert (batch.indices, batch.flips) == (twin.indices, twin.flips)
        assert paired.method.negative_flips(twin, k) == twin.flips
        for p, n in zip(batch.flips, paper.method.negative_flips(batch, k), strict=True):
            counts[(p, n)] += 1
    for k in range(50):
        batch = matched.trainer.batches.batch(k)
        assert matched.method.negative_flips(batch, k) == batch.flips
    # 600 pairs of fair coins: each of the four combinations has probability 1/4 (sd 10.6 around 150),
    # so the negative's flip carries no information about the positive's.
    assert all(100 < c < 200 for c in counts.values()), counts
    # The flips drawn are the ones the negative branch uses, and they are reproducible.
    batch = paper.trainer.batches.batch(7)
    negative = paper.method._branches(batch, 7)[1][0]
    assert negative.flips == paper.method.negative_flips(batch, 7) == paper.method.negative_flips(batch, 7)


# -- item 4: fp16 overflow in a branch gradient ----------------------------------------------------
def _force_inf(monkeypatch, method, branch: int) -> None:
    """Make branch ``branch``'s gradient (0 positive, 1 negative, 2 anchor) overflow, whatever pass runs."""
    def wrap(run_pass):
        def forced(branches):
            losses, gradients = run_pass(branches)
            poisoned = gradients[branch][0].clone()
            poisoned.view(-1)[0] = float("inf")
            gradients[branch] = [poisoned, *gradients[branch][1:]]
            return losses, gradients
        return forced
    monkeypatch.setattr(method, "_fused_pass", wrap(method._fused_pass))
    monkeypatch.setattr(method, "_separate_passes", wrap(method._separate_passes))


@pytest.mark.parametrize(("method_name", "rule", "branch", "fused"), [
    ("nsync", "code-v4.2", 1, True),  # the reported case: inf only in b made P(a, a+b) "degenerate" -> 2a
    ("nsync", "code-v4.2", 1, False),
    ("nsync", "paper", 0, True),
    ("nsync", "code-v5.1", 2, True),  # the anchor branch
    ("nsync-lora", "code-v4.2", 1, True),
])
def test_a_non_finite_branch_gradient_skips_the_step_and_backs_off_the_scale(
        data_root, tmp_path, monkeypatch, method_name, rule, branch, fused):
    training = training_for(method_name, data_root, tmp_path,
                            [f"nsync.rule={rule}", f"nsync.fused={str(fused).lower()}"], protocol="paper-code")
    method, trainer = training.method, training.trainer
    method.precision = _scaled()
    params = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    before = [p.detach().clone() for p in params]

    with monkeypatch.context() as patch:
        _force_inf(patch, method, branch)
        logs = trainer.train_step()
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))  # no update, no weight decay
    assert not trainer.optimizer.state  # AdamW never stepped
    assert method.precision.scaler.get_scale() == 2.0**9  # backed off by the default factor 0.5
    assert (logs["nsync/overflow_skips"], logs["nsync/degenerate_steps"]) == (1.0, 0.0)
    assert method.trainable_state()["nsync_overflow_skips"].item() == 1

    logs = trainer.train_step()  # the next, finite step trains at the reduced scale
    assert any(not torch.equal(p, b) for p, b in zip(params, before, strict=True))
    assert method.precision.scaler.get_scale() == 2.0**9
    assert logs["nsync/overflow_skips"] == 1.0 and torch.isfinite(torch.tensor(logs["grad/norm_update"]))


def test_a_discarded_anchor_pass_cannot_skip_the_step(data_root, tmp_path, monkeypatch):
    """code-v4.2 runs its anchor pass only for cost (run_anchor=always) and, like the release, never uses it."""
    training = training_for("nsync", data_root, tmp_path, ["nsync.run_anchor=always"], protocol="paper-code")
    training.method.precision = _scaled()
    _force_inf(monkeypatch, training.method, 2)
    logs = training.trainer.train_step()
    assert logs["nsync/overflow_skips"] == 0.0 and training.trainer.optimizer.state
    assert training.method.precision.scaler.get_scale() == 2.0**10


def test_the_nsync_skip_matches_a_plain_fp16_overflow(data_root, tmp_path, monkeypatch):
    """The same scaler state after an overflow in the baseline's single pass and in NSYNC's negative branch."""
    ti = training_for("ti", data_root, tmp_path / "ti", protocol="paper-code")
    ti.method.precision = _scaled()
    positive_loss = ti.method.positive_loss
    monkeypatch.setattr(ti.method, "positive_loss", lambda batch, k: positive_loss(batch, k) * float("inf"))
    ti.trainer.train_step()
    nsync = training_for("nsync", data_root, tmp_path / "nsync", protocol="paper-code")
    nsync.method.precision = _scaled()
    _force_inf(monkeypatch, nsync.method, 1)
    nsync.trainer.train_step()
    assert ti.method.precision.state_dict() == nsync.method.precision.state_dict()
    assert ti.method.precision.state_dict()["scale"] == 2.0**9


def test_without_a_loss_scale_a_non_finite_branch_gradient_is_an_error(data_root, tmp_path, monkeypatch):
    training = training_for("nsync", data_root, tmp_path, protocol="paper-code")
    _force_inf(monkeypatch, training.method, 1)
    with pytest.raises(TrainingError, match=r"negative gradient is not finite at step 0.*mixed_precision='no'"):
        training.trainer.train_step()


def test_overflow_counter_survives_a_checkpoint(data_root, tmp_path, monkeypatch):
    training = training_for("nsync", data_root, tmp_path, protocol="paper-code")
    training.method.precision = _scaled()
    with monkeypatch.context() as patch:
        _force_inf(patch, training.method, 1)
        training.trainer.train_step()
    state = training.method.trainable_state()
    fresh = training_for("nsync", data_root, tmp_path / "fresh", protocol="paper-code")
    fresh.method.load_trainable_state(state)
    assert (fresh.method.overflow_skips, fresh.method.degenerate_steps) == (1, 0)


# -- item 5: LoRA rows follow diffusers' LoRA example ----------------------------------------------
@pytest.mark.parametrize("method", ["lora", "nsync-lora"])
def test_paper_code_lora_rows_clip_and_crop_like_the_diffusers_example(method):
    config = resolve_config(style="toy-pastel", method=method, seed=0, profile="sd15", protocol="paper-code")
    assert config.train.max_grad_norm == 1.0
    assert (config.data.interpolation, config.data.center_crop, config.data.flip_p) == ("bilinear", True, 0.5)
    assert (config.train.learning_rate, config.train.scale_lr) == (1e-4, False)
    ti = resolve_config(style="toy-pastel", method="nsync", seed=0, profile="sd15", protocol="paper-code")
    assert ti.train.max_grad_norm is None  # the released TI/NSYNC code does not clip
    assert (ti.data.interpolation, ti.data.center_crop) == ("bicubic", False)


def test_gradient_clipping_scales_the_gradient_to_the_max_norm():
    parameter = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    precision = _scaled(4.0)
    precision.scale(torch.tensor(1.0))  # the scaler's scale exists once a loss was scaled
    parameter.grad = torch.tensor([6.0, 8.0]) * 4.0  # a scaled gradient of norm 10
    precision.step(optimizer, max_grad_norm=1.0)
    torch.testing.assert_close(parameter.detach(), torch.tensor([-0.6, -0.8]))
