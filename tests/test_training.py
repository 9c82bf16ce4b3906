import json
import logging
import os
import signal

import numpy as np
import pytest
import torch

import mrcnf_cli.training as training
from mrcnf_cli import MultiResFlow
from mrcnf_cli.cnf import CNFConfig
from mrcnf_cli.data import load_dataset
from mrcnf_cli.errors import InputError, NonFiniteError
from mrcnf_cli.solvers import SolverConfig
from mrcnf_cli.store import load_level
from mrcnf_cli.training import TrainOptions, train_level

FAST = CNFConfig(hidden=(8,), train_solver=SolverConfig("rk4", step_size=0.5), eval_solver=SolverConfig("rk4", step_size=0.5))


@pytest.fixture(scope="module")
def photos():
    train = load_dataset("photos", split="train", image_size=8).array[:256]
    test = load_dataset("photos", split="test", image_size=8).array[:32]
    return np.asarray(train), np.asarray(test)


def fresh_stack():
    torch.manual_seed(0)
    return MultiResFlow.build(8, 2, cnf=FAST)


def options(**changes):
    values = dict(steps=6, batch_size=16, warmup_steps=2, validate_every=3, validation_images=16, log_every=1, seed=3)
    values.update(changes)
    return TrainOptions(**values)


def read_metrics(model_dir, level="08x08"):
    lines = (model_dir / "runs" / f"level-{level}" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def step_losses(model_dir, level="08x08"):
    return {row["step"]: row["loss"] for row in read_metrics(model_dir, level) if "loss" in row}


def test_training_lowers_loss_and_saves_level(tmp_path, photos):
    stack = fresh_stack()
    result = train_level(stack, 1, *photos, model_dir=tmp_path, options=options(steps=12, learning_rate=3e-3), data_info={"data": "photos"})

    losses = step_losses(tmp_path)
    assert result.steps == 12
    assert sorted(losses) == list(range(1, 13))
    assert np.mean([losses[s] for s in (10, 11, 12)]) < np.mean([losses[s] for s in (1, 2, 3)])
    level, info = load_level(tmp_path / "level-08x08.safetensors")
    assert info["data"] == "photos"
    assert info["validation_bpd"] == pytest.approx(result.best_validation_bpd)
    assert info["steps"] in (3, 6, 9, 12)


def test_resume_continues_exactly(tmp_path, photos):
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    train_level(fresh_stack(), 1, *photos, model_dir=whole, options=options(steps=6), data_info={})
    train_level(fresh_stack(), 1, *photos, model_dir=halves, options=options(steps=3), data_info={})
    train_level(fresh_stack(), 1, *photos, model_dir=halves, options=options(steps=6), data_info={})

    expected, resumed = step_losses(whole), step_losses(halves)
    for step in (4, 5, 6):
        assert resumed[step] == expected[step]


def test_fresh_start_begins_new_metrics(tmp_path, photos):
    train_level(fresh_stack(), 1, *photos, model_dir=tmp_path, options=options(steps=3), data_info={})
    train_level(fresh_stack(), 1, *photos, model_dir=tmp_path, options=options(steps=2, resume=False), data_info={})

    steps = [row["step"] for row in read_metrics(tmp_path) if "loss" in row]
    assert steps == [1, 2]


def test_resume_on_other_validation_set_restarts_best(tmp_path, photos, caplog):
    train_level(fresh_stack(), 1, *photos, model_dir=tmp_path, options=options(steps=3), data_info={"data": "a"})
    with caplog.at_level(logging.WARNING):
        result = train_level(fresh_stack(), 1, *photos, model_dir=tmp_path, options=options(steps=4, validation_images=8), data_info={"data": "a"})

    _, info = load_level(tmp_path / "level-08x08.safetensors")
    assert "validation set changed" in caplog.text
    assert info["validation_images"] == 8
    assert info["steps"] == 4
    assert result.best_validation_bpd == pytest.approx(info["validation_bpd"])


def test_rerun_rebuilds_damaged_level_file(tmp_path, photos):
    train_level(fresh_stack(), 0, *photos, model_dir=tmp_path, options=options(steps=3), data_info={})
    (tmp_path / "level-04x04.safetensors").write_bytes(b"damaged")

    result = train_level(fresh_stack(), 0, *photos, model_dir=tmp_path, options=options(steps=3), data_info={})

    _, info = load_level(tmp_path / "level-04x04.safetensors")
    assert result.stopped_by == "steps"
    assert info["steps"] == 3


def test_rerun_after_budget_does_nothing(tmp_path, photos):
    first = train_level(fresh_stack(), 0, *photos, model_dir=tmp_path, options=options(steps=3), data_info={})
    before = (tmp_path / "level-04x04.safetensors").read_bytes()
    result = train_level(fresh_stack(), 0, *photos, model_dir=tmp_path, options=options(steps=3), data_info={})
    assert result.stopped_by == "already trained"
    assert result.seconds == first.seconds
    assert result.seconds > 0
    assert (tmp_path / "level-04x04.safetensors").read_bytes() == before


def test_non_finite_step_skipped(tmp_path, photos, monkeypatch, caplog):
    calls = {"count": 0}
    original = training.level_loss

    def sometimes_nan(*args):
        calls["count"] += 1
        loss, bits = original(*args)
        return (loss * float("nan"), bits) if calls["count"] == 2 else (loss, bits)

    monkeypatch.setattr(training, "level_loss", sometimes_nan)
    with caplog.at_level(logging.WARNING):
        result = train_level(fresh_stack(), 1, *photos, model_dir=tmp_path, options=options(steps=4), data_info={})

    assert result.steps == 4
    assert result.skipped_steps == 1
    assert calls["count"] == 5
    assert "skipped a step with a non-finite loss" in caplog.text
    assert all(np.isfinite(row["loss"]) for row in read_metrics(tmp_path) if "loss" in row)


def test_repeated_failures_stop_and_keep_files(tmp_path, photos, monkeypatch):
    train_level(fresh_stack(), 1, *photos, model_dir=tmp_path, options=options(steps=3), data_info={})
    level_path = tmp_path / "level-08x08.safetensors"
    before = level_path.read_bytes()
    checkpoint_before = (tmp_path / "runs" / "level-08x08" / "checkpoint.safetensors").read_bytes()

    def always_nan(*args):
        return torch.tensor(float("nan"), requires_grad=True), torch.zeros(1)

    monkeypatch.setattr(training, "level_loss", always_nan)
    with pytest.raises(NonFiniteError, match="5 steps in a row had non-finite values"):
        train_level(fresh_stack(), 1, *photos, model_dir=tmp_path, options=options(steps=10), data_info={})

    assert level_path.read_bytes() == before
    assert (tmp_path / "runs" / "level-08x08" / "checkpoint.safetensors").read_bytes() == checkpoint_before


def test_interrupt_saves_state_then_resume(tmp_path, photos, monkeypatch):
    calls = {"count": 0}
    original = training.level_loss

    def interrupting(*args):
        calls["count"] += 1
        if calls["count"] == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args)

    monkeypatch.setattr(training, "level_loss", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train_level(fresh_stack(), 1, *photos, model_dir=tmp_path / "cut", options=options(steps=6), data_info={})
    monkeypatch.setattr(training, "level_loss", original)

    assert max(step_losses(tmp_path / "cut")) == 2
    train_level(fresh_stack(), 1, *photos, model_dir=tmp_path / "cut", options=options(steps=6), data_info={})
    train_level(fresh_stack(), 1, *photos, model_dir=tmp_path / "whole", options=options(steps=6), data_info={})
    assert step_losses(tmp_path / "cut")[6] == step_losses(tmp_path / "whole")[6]


def test_epoch_order_is_a_permutation():
    order = training.epoch_order(100, 2, seed=5)
    assert sorted(order.tolist()) == list(range(100))
    assert torch.equal(order, training.epoch_order(100, 2, seed=5))
    assert not torch.equal(order, training.epoch_order(100, 3, seed=5))


def test_max_time_stops_training(tmp_path, photos):
    result = train_level(fresh_stack(), 0, *photos, model_dir=tmp_path, options=options(steps=None, max_time=0.5), data_info={})
    assert result.stopped_by == "max_time"
    assert result.steps >= 1


def test_epochs_budget(tmp_path, photos):
    result = train_level(fresh_stack(), 0, *photos, model_dir=tmp_path, options=options(steps=None, epochs=0.25, batch_size=16), data_info={})
    assert result.stopped_by == "epochs"
    assert result.steps == 256 // 16 // 4


@pytest.mark.parametrize("changes,message", [
    ({"batch_size": 0}, "--batch-size must be a finite number above 0, got 0"),
    ({"learning_rate": float("nan")}, "--lr must be a finite number above 0, got nan"),
    ({"steps": None}, "training needs a budget"),
    ({"kinetic_weight": -1.0}, "--kinetic must be zero or positive"),
])
def test_bad_options_rejected(changes, message):
    with pytest.raises(InputError, match=message):
        TrainOptions(**{"steps": 5, **changes})


def test_solver_failure_skips_step(tmp_path, photos, monkeypatch):
    from mrcnf_cli.errors import SolverError

    calls = {"count": 0}
    original = training.level_loss

    def failing_once(*args):
        calls["count"] += 1
        if calls["count"] == 2:
            raise SolverError("the bosh3 solver needed more than 1000 steps")
        return original(*args)

    monkeypatch.setattr(training, "level_loss", failing_once)
    result = train_level(fresh_stack(), 0, *photos, model_dir=tmp_path, options=options(steps=3), data_info={})
    assert result.steps == 3
    assert result.skipped_steps == 1
