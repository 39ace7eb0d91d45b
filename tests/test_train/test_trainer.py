"""Tests of the trainer: recipe, checkpoints, bit-exact resume."""

import io
import json

import pytest
import torch

from tvm_snn.errors import ArtifactError, ConfigError
from tvm_snn.train import (
    ModelSpec,
    SNNConfig,
    TrainConfig,
    fit,
    load_checkpoint,
    load_dataset,
    load_model,
)
from tvm_snn.train.checkpoint import CHECKPOINT_NAME
from tvm_snn.train.quantizers import SubsetWeightQuantizer
from tvm_snn.train.trainer import cosine_lr, epoch_plan

from common import LR_ATOL

TINY_WIDTH = 4
TINY_BATCH = 64
# Small tau and a short refinement period, so refills and refinement happen within a few steps.
TINY_TAU = 3
TINY_PERIOD = 3
STEPS_PER_EPOCH = 22  # 1438 digits // 64
CHECKPOINT_EVERY = 10
LATENT_NEAR_ZERO = 0.05
LATENT_LR_SCALE = 10.0


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _spec(digits, **config):
    options = {"tau_3x3": TINY_TAU, "refine_period": TINY_PERIOD, "seed": 1} | config
    return ModelSpec(
        "resnet20",
        digits.spec.num_classes,
        digits.spec.in_channels,
        SNNConfig(**options),
        width=TINY_WIDTH,
        seed=1,
    )


def _recipe(**options):
    base = {
        "epochs": 2,
        "batch_size": TINY_BATCH,
        "checkpoint_every": CHECKPOINT_EVERY,
        "threads": 1,
        "progress": False,
    }
    return TrainConfig(**(base | options))


def _assert_same_state(first, second):
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_cosine_schedule_starts_at_lr_and_ends_at_zero():
    assert cosine_lr(0.1, 0, 100) == pytest.approx(0.1)
    assert cosine_lr(0.1, 50, 100) == pytest.approx(0.05)
    assert cosine_lr(0.1, 100, 100) == pytest.approx(0.0, abs=LR_ATOL)


def test_epoch_plan_is_a_seeded_partition_of_the_ranks_shards():
    plans = [epoch_plan(100, 8, seed=3, epoch=1, rank=rank, world=2) for rank in (0, 1)]
    assert plans[0].shape == (6, 8)
    assert set(plans[0].flatten().tolist()).isdisjoint(plans[1].flatten().tolist())
    assert torch.equal(plans[0], epoch_plan(100, 8, seed=3, epoch=1, rank=0, world=2))
    assert not torch.equal(plans[0], epoch_plan(100, 8, seed=3, epoch=2, rank=0, world=2))


def test_default_recipe_is_the_papers():
    recipe = TrainConfig()
    assert (recipe.lr, recipe.momentum, recipe.weight_decay) == (0.1, 0.9, 1e-4)


@pytest.mark.parametrize(
    "options", [{"epochs": 0}, {"lr": 0.0}, {"lr": float("nan")}, {"momentum": -1.0}, {"threads": 0}]
)
def test_bad_train_config_is_rejected(options):
    with pytest.raises(ConfigError):
        TrainConfig(**options)


def test_stopped_run_resumes_bit_exactly(digits, tmp_path):
    spec = _spec(digits)
    straight = fit(spec.build(), digits, _recipe(), tmp_path / "straight", spec=spec)
    assert straight.steps == 2 * STEPS_PER_EPOCH

    stop_at = 3 * CHECKPOINT_EVERY  # a checkpoint in the second epoch
    stopped = fit(spec.build(), digits, _recipe(max_steps=stop_at), tmp_path / "run", spec=spec)
    assert stopped.steps == stop_at
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)["step"] == stop_at

    fresh = ModelSpec.from_dict(spec.to_dict() | {"seed": 7}).build()  # other init: all must load
    resumed = fit(fresh, digits, _recipe(), tmp_path / "run", resume=True, spec=spec)
    assert resumed.steps == straight.steps
    _assert_same_state(resumed.model, straight.model)
    quantizers = [m for m in resumed.model.modules() if isinstance(m, SubsetWeightQuantizer)]
    assert quantizers and all(int(q.step) == straight.steps for q in quantizers)
    assert [h["test_accuracy"] for h in resumed.history] == [
        h["test_accuracy"] for h in straight.history
    ]
    optimizer = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)["optimizer"]
    reference = load_checkpoint(tmp_path / "straight" / CHECKPOINT_NAME)["optimizer"]
    for index, entry in reference["state"].items():
        assert torch.equal(optimizer["state"][index]["momentum_buffer"], entry["momentum_buffer"])


class Crash(Exception):
    """Stands for a killed process."""


def test_crashed_run_loses_at_most_one_interval_and_resumes_bit_exactly(digits, tmp_path):
    spec = _spec(digits, binary_act=True)
    straight = fit(spec.build(), digits, _recipe(epochs=1), spec=spec)

    crash_at = CHECKPOINT_EVERY + 4  # between two checkpoints
    model = spec.build()
    calls = []

    def crash(module, inputs):
        if module.training:
            calls.append(1)
            if len(calls) > crash_at:
                raise Crash

    handle = model.register_forward_pre_hook(crash)
    with pytest.raises(Crash):
        fit(model, digits, _recipe(epochs=1), tmp_path, spec=spec)
    handle.remove()
    saved = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert crash_at - CHECKPOINT_EVERY < saved["step"] <= crash_at
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    resumed = fit(spec.build(), digits, _recipe(epochs=1), tmp_path, resume=True, spec=spec)
    _assert_same_state(resumed.model, straight.model)


def _quantizers(model):
    return {n: q for n, q in model.named_modules() if isinstance(q, SubsetWeightQuantizer)}


def test_refinement_changes_the_subset_once_latents_cross_zero(digits):
    model = _spec(digits).build()
    with torch.no_grad():
        for quantizer in _quantizers(model).values():
            quantizer.latent.mul_(LATENT_NEAR_ZERO)  # as late in training: signs kept, small values
    before = {n: q.memory.clone() for n, q in _quantizers(model).items()}
    result = fit(model, digits, _recipe(epochs=1, latent_lr_scale=LATENT_LR_SCALE))
    after = _quantizers(result.model)
    assert any(not torch.equal(before[n], after[n].memory) for n in before)


def test_refinement_leaves_forward_and_weights_alone_until_a_latent_flips(digits):
    refined = fit(_spec(digits).build(), digits, _recipe(epochs=1))
    vanilla = fit(_spec(digits, refine=False).build(), digits, _recipe(epochs=1))
    moved = [q for q in _quantizers(refined.model).values() if q.latent.detach().abs().min() < 1]
    assert moved, "the latent subsets received no gradient"
    weights = {k: v for k, v in vanilla.model.state_dict().items() if "quantizer" not in k}
    for key, value in weights.items():
        assert torch.equal(refined.model.state_dict()[key], value), key


def test_latent_lr_scale_speeds_up_the_latent_subsets_only(digits):
    slow = fit(_spec(digits).build(), digits, _recipe(epochs=1))
    fast = fit(_spec(digits).build(), digits, _recipe(epochs=1, latent_lr_scale=4.0))
    start = _spec(digits).build()
    for name, quantizer in _quantizers(start).items():
        initial = quantizer.latent.detach()
        slow_move = (_quantizers(slow.model)[name].latent.detach() - initial).abs().max()
        fast_move = (_quantizers(fast.model)[name].latent.detach() - initial).abs().max()
        assert fast_move > 2 * slow_move, name


def test_resume_refuses_a_different_recipe(digits, tmp_path):
    spec = _spec(digits)
    fit(spec.build(), digits, _recipe(max_steps=2), tmp_path, spec=spec)
    with pytest.raises(ConfigError, match="batch_size"):
        fit(spec.build(), digits, _recipe(batch_size=32), tmp_path, resume=True, spec=spec)


def test_resume_without_a_checkpoint_is_an_error(digits, tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        fit(_spec(digits).build(), digits, _recipe(), tmp_path, resume=True)


def test_training_learns_and_writes_metrics_and_a_loadable_checkpoint(digits, tmp_path):
    spec = _spec(digits, tau_3x3=5)
    stream = io.StringIO()
    result = fit(spec.build(), digits, _recipe(epochs=3, progress=True), tmp_path, spec=spec, stream=stream)
    chance = 1 / digits.spec.num_classes
    assert result.test_accuracy > 3 * chance
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("epoch 3/3 [") and "test_acc" in lines[-1]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [entry["epoch"] for entry in metrics] == [1, 2, 3]
    model, state = load_model(tmp_path / CHECKPOINT_NAME)
    _assert_same_state(model, result.model)
    assert state["model_spec"] == spec.to_dict()
