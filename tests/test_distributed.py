"""Data-parallel training with gloo on the CPU, and concurrent level jobs writing one stack."""

import dataclasses
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as multiprocessing
from safetensors.torch import load_file, save_file

import mrcnf_cli.training as training
from mrcnf_cli import MultiResFlow
from mrcnf_cli.cnf import CNFConfig
from mrcnf_cli.distributed import Distributed
from mrcnf_cli.solvers import SolverConfig
from mrcnf_cli.stack import dequantize
from mrcnf_cli.training import LevelObjective, TrainOptions, train_level

from helpers import TINY_TRAINING, randomize

SOLVER = SolverConfig("rk4", step_size=0.25)
CONFIG = CNFConfig(hidden=(8,), trace="exact", train_solver=SOLVER, eval_solver=SOLVER)
GLOBAL_BATCH = 8


def free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def make_stack(adjoint: bool = False) -> MultiResFlow:
    torch.manual_seed(0)
    config = dataclasses.replace(CONFIG, adjoint=adjoint)
    return randomize(MultiResFlow.build(4, 2, channels=1, cnf=config), std=0.2, seed=1)


def make_images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(32, 1, 4, 4), dtype=np.uint8)


def fixed_noise_loss(stack, level_index, images, generator, options):
    """The level loss with dequantization noise that depends only on the pixel values."""
    level = stack.levels[level_index]
    noise = ((images.double() * 0.6180339887 + 0.1) % 1.0).to(torch.float32)
    x = dequantize(images, noise, dtype=torch.float32)
    v, context = stack.level_inputs(x, level_index)
    logp = level.log_prob(v, context)
    bits = -logp / (v[0].numel() * np.log(2)) + 8
    kinetic, jacobian = level.regularization.mean(0)
    return bits.mean() + options.kinetic_weight * kinetic + options.jacobian_weight * jacobian, bits


def gradients_of(objective) -> dict[str, torch.Tensor]:
    return {name: parameter.grad.detach().clone() for name, parameter in objective.level.named_parameters()}


def _worker(rank: int, world_size: int, port: int, folder: str, adjoint: bool) -> None:
    # One thread per process: two processes on two cores would otherwise oversubscribe them.
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    training.level_loss = fixed_noise_loss
    world = Distributed(rank, world_size, rank)

    # 1. One gradient on this process's half of the global batch.
    stack = make_stack(adjoint)
    images = torch.from_numpy(make_images()[:GLOBAL_BATCH])
    objective = LevelObjective(stack, 1, TrainOptions(steps=1))
    model = torch.nn.parallel.DistributedDataParallel(objective)
    share = images[rank * GLOBAL_BATCH // world_size : (rank + 1) * GLOBAL_BATCH // world_size]
    loss, _ = model(share, None)
    loss.backward()
    if rank == 0:
        save_file(gradients_of(objective), os.path.join(folder, "gradients.safetensors"))

    # 2. One training step through the trainer, writing the level file.
    options = TrainOptions(steps=1, batch_size=GLOBAL_BATCH // world_size, warmup_steps=1, validate_every=1, validation_images=4, seed=3)
    train_level(make_stack(adjoint), 1, make_images(), make_images()[:4], model_dir=os.path.join(folder, "model"),
                options=options, data_info={}, world=world)
    dist.destroy_process_group()


@pytest.mark.parametrize("adjoint", [False, True], ids=["backpropagation", "adjoint"])
def test_two_processes_match_one(tmp_path, monkeypatch, adjoint):
    # Single process on the whole global batch.
    monkeypatch.setattr(training, "level_loss", fixed_noise_loss)
    objective = LevelObjective(make_stack(adjoint), 1, TrainOptions(steps=1))
    loss, _ = objective(torch.from_numpy(make_images()[:GLOBAL_BATCH]), None)
    loss.backward()
    expected = gradients_of(objective)
    options = TrainOptions(steps=1, batch_size=GLOBAL_BATCH, warmup_steps=1, validate_every=1, validation_images=4, seed=3)
    train_level(make_stack(adjoint), 1, make_images(), make_images()[:4], model_dir=tmp_path / "single", options=options, data_info={})

    # Two gloo processes, each on half of it.
    multiprocessing.spawn(_worker, args=(2, free_port(), str(tmp_path), adjoint), nprocs=2, join=True)

    actual = load_file(str(tmp_path / "gradients.safetensors"))
    for name, gradient in expected.items():
        scale = gradient.abs().max().item()
        assert (actual[name] - gradient).abs().max().item() <= 1e-5 * scale, name

    single = load_file(str(tmp_path / "single" / "level-04x04.safetensors"))
    distributed = load_file(str(tmp_path / "model" / "level-04x04.safetensors"))
    assert set(single) == set(distributed)
    for name in single:
        assert (single[name] - distributed[name]).abs().max().item() <= 1e-6, name


def test_epoch_order_shards_cover_permutation():
    whole = training.epoch_order(20, 3, seed=1)
    shards = [training.epoch_order(20, 3, seed=1, world=Distributed(rank, 2, rank)) for rank in range(2)]
    assert sorted(torch.cat(shards).tolist()) == list(range(20))
    assert torch.equal(torch.stack(shards, dim=1).reshape(-1), whole)


def test_concurrent_level_jobs_build_one_stack(cifar_crops, tmp_path):
    model = tmp_path / "stack"
    jobs = [
        subprocess.Popen(
            [sys.executable, "-m", "mrcnf_cli", "train", "--res", "3", "--data", str(cifar_crops), "--model", str(model),
             "--level", level, "--steps", "2", "-q", *TINY_TRAINING],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for level in ("8x8", "16x16", "32x32")
    ]
    for job in jobs:
        _, stderr = job.communicate(timeout=600)
        assert job.returncode == 0, stderr

    info = subprocess.run([sys.executable, "-m", "mrcnf_cli", "info", "-m", str(model), "--json"], capture_output=True, text=True)
    description = json.loads(info.stdout)
    assert description["complete"] is True
    assert [level["resolution"] for level in description["levels"]] == ["8x8", "16x16", "32x32"]


def run_with_environment(environment: dict, *arguments, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "mrcnf_cli", *arguments], env={**os.environ, **environment},
        capture_output=True, text=True, timeout=timeout,
    )


def test_missing_rendezvous_is_usage_error(tmp_path):
    result = run_with_environment({"WORLD_SIZE": "2"}, "train", "--model", str(tmp_path / "m"), "--steps", "1", "--device", "cpu")
    assert result.returncode == 2
    assert "RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT are not set; launch with torchrun" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "environment, message",
    [
        ({"WORLD_SIZE": "abc", "RANK": "0"}, "invalid WORLD_SIZE 'abc'"),
        ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "invalid RANK 2 for WORLD_SIZE 2"),
        ({"WORLD_SIZE": "2", "RANK": "-1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "invalid RANK '-1'"),
    ],
    ids=["world-size", "rank-too-large", "rank-negative"],
)
def test_bad_launch_variables_are_usage_errors(tmp_path, environment, message):
    result = run_with_environment(environment, "train", "--model", str(tmp_path / "m"), "--steps", "1", "--device", "cpu")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()


def test_stray_rank_without_world_runs_alone(cifar_crops, tmp_path):
    result = run_with_environment(
        {"RANK": "1", "OMP_NUM_THREADS": "1"}, "train", "--res", "1", "--image-size", "8", "--data", str(cifar_crops),
        "--model", str(tmp_path / "m"), "--steps", "1", "--device", "cpu", "--json", *TINY_TRAINING,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["levels"][0]["steps"] == 1


def test_absent_peer_times_out(tmp_path):
    environment = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                   "MASTER_PORT": str(free_port()), "MRCNF_DIST_TIMEOUT": "5"}
    result = run_with_environment(environment, "train", "--model", str(tmp_path / "m"), "--steps", "1", "--device", "cpu")
    assert result.returncode == 2
    assert "could not join the distributed job" in result.stderr
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").glob("*.safetensors"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without enough GPUs")
def test_more_processes_than_gpus(tmp_path):
    environment = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    result = run_with_environment(environment, "train", "--model", str(tmp_path / "m"), "--steps", "1", "--device", "cuda")
    assert result.returncode == 2
    assert "CUDA is not available" in result.stderr


def torchrun_train(cifar_crops, model, steps: int) -> subprocess.CompletedProcess:
    """Train one 8x8 level with 2 gloo processes launched by torchrun."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
        "-m", "mrcnf_cli", "train", "--res", "1", "--image-size", "8", "--data", str(cifar_crops), "--model", str(model),
        "--steps", str(steps), "--device", "cpu", "-q", *TINY_TRAINING,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_resume_under_torchrun_equals_one_run(cifar_crops, tmp_path):
    """Two steps, a restart, and two more give the weights, optimizer and generators of four in one go."""
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    for model, budgets in ((whole, [4]), (resumed, [2, 4])):
        for steps in budgets:
            result = torchrun_train(cifar_crops, model, steps)
            assert result.returncode == 0, result.stderr

    expected = load_file(str(whole / "runs" / "level-08x08" / "checkpoint.safetensors"))
    actual = load_file(str(resumed / "runs" / "level-08x08" / "checkpoint.safetensors"))
    assert set(actual) == set(expected)
    assert any(name.startswith("generator.1") for name in expected)
    for name, tensor in expected.items():
        assert torch.equal(actual[name], tensor), name
