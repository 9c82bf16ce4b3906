"""Time one level's training step (forward and backward) and evaluation on a fixed batch.

    python benchmarks/training_step.py --model runs/cifar10/model --level 32x32 --steps 5 > step.json
    python benchmarks/training_step.py --model runs/cifar10/model --profile > /dev/null

The seed fixes the batch, the dequantization noise and the Hutchinson probes, and the weights are
not updated, so every timed step does the same work. Two checkouts of the code can then be
compared on the same numbers (see ``speedup.py``). The script uses only the stable parts of
the package (``load_stack``, ``level_loss``, ``level_bits``), which is what lets it run against
an older commit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import PACKAGE_LABEL, ArgumentParser, at_least, check_package_tree, existing_file, existing_path, fail, machine, run_main

import mrcnf_cli

try:
    from mrcnf_cli.store import load_stack
    from mrcnf_cli.training import TrainOptions, level_bits, level_loss
except ImportError as error:
    fail(f"{PACKAGE_LABEL} lacks what this script uses ({error}); choose a later commit")


def fixed_batch(stack, batch_size: int, images: Path | None, seed: int) -> torch.Tensor:
    """Return (B, C, H, W) uint8 images: the first test images of ``images`` (.npy) or seeded noise."""
    channels, size = stack.config.channels, stack.sizes[-1]
    if images is not None:
        expected = (channels, *size)
        try:
            array = np.load(images, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            array = None
        if not isinstance(array, np.ndarray):
            fail(f"{images} is not a .npy file of images; save a uint8 array (N, {expected[0]}, {expected[1]}, {expected[2]}) with numpy.save")
        if array.dtype != np.uint8 or array.ndim != 4 or tuple(array.shape[1:]) != expected:
            fail(f"{images} contains a {array.dtype} array of shape {array.shape}; expected uint8 (N, {expected[0]}, {expected[1]}, {expected[2]})")
        if len(array) == 0:
            fail(f"{images} contains no images; save at least one")
        if len(array) < batch_size:
            print(f"warning: {images} contains {len(array)} images, fewer than --batch-size {batch_size}; the batch has {len(array)}", file=sys.stderr)
        return torch.from_numpy(np.array(array[:batch_size]))
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch_size, channels, *size), generator=generator, dtype=torch.uint8)


def training_step(stack, index: int, batch: torch.Tensor, seed: int) -> tuple[float, torch.Tensor, int]:
    """Run one forward and backward pass; return its seconds, the bits (B,) and the NFE."""
    level = stack.levels[index]
    level.train()
    level.zero_grad(set_to_none=True)
    generator = torch.Generator().manual_seed(seed)

    started = time.perf_counter()
    loss, bits = level_loss(stack, index, batch, generator, TrainOptions())
    loss.backward()
    seconds = time.perf_counter() - started
    return seconds, bits.detach(), level.nfe


@torch.no_grad()
def evaluation(stack, index: int, batch: torch.Tensor, seed: int) -> tuple[float, torch.Tensor, int]:
    """Run one evaluation pass with the evaluation solver; return its seconds, bits (B,) and NFE."""
    level = stack.levels[index]
    level.eval()
    generator = torch.Generator().manual_seed(seed)

    started = time.perf_counter()
    bits = level_bits(stack, index, batch, generator)
    seconds = time.perf_counter() - started
    return seconds, bits, level.nfe


@torch.no_grad()
def sampling(stack, index: int, batch: torch.Tensor, seed: int) -> tuple[float, int]:
    """Map base noise through the level's inverse, given the batch's coarser images; return its seconds and NFE."""
    level = stack.levels[index]
    level.eval()
    generator = torch.Generator().manual_seed(seed)
    x = batch.to(next(level.parameters()).dtype) / 255
    _, context = stack.level_inputs(x, index)
    z = level.sample_base(len(batch), generator=generator)

    started = time.perf_counter()
    level.inverse(z, context)
    return time.perf_counter() - started, level.nfe


def count_flops(function, *arguments) -> int:
    """Count the floating-point operations of one call with torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter:
            function(*arguments)
    except RuntimeError as error:
        # Older packages call autograd.grad in a way FlopCounterMode's module hooks reject.
        fail(f"--flops cannot count the passes of {PACKAGE_LABEL} ({error}); leave out --flops", exit_code=1)
    return counter.get_total_flops()


def peak_memory_mib() -> float:
    """Return the peak resident set size of this process, MiB.

    Reads VmHWM from /proc/self/status on Linux. ``ru_maxrss`` would not do: Linux keeps it
    across exec, so a child started by a benchmark would report its parent's peak.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_memory() -> None:
    """Start the peak resident set size over from the current size (Linux; elsewhere nothing)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def main() -> None:
    parser = ArgumentParser(__doc__)
    parser.add_argument("--model", type=existing_path, required=True, help="a trained stack directory")
    parser.add_argument("--level", default=None, help="level to time, for example 32x32 or 08x08 (default: the finest)")
    parser.add_argument("--images", type=existing_file, default=None, help=".npy of uint8 images (N, C, H, W); without it, seeded noise")
    parser.add_argument("--batch-size", type=at_least(1), default=64, help="images per pass")
    parser.add_argument("--steps", type=at_least(1), default=5, help="timed training steps after the warm-up steps")
    parser.add_argument("--warmup-steps", type=at_least(0), default=2,
                        help="untimed training steps first; the first two run slower while memory and oneDNN kernels are set up")
    parser.add_argument("--eval-steps", type=at_least(1), default=2, help="timed evaluation passes after one warm-up pass")
    parser.add_argument("--seed", type=at_least(0, 2**64 - 1), default=0, help="seed of the noise batch, the dequantization noise and the probes")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler tables of one step on stderr")
    parser.add_argument("--adjoint", action="store_true", help="train with the adjoint method")
    parser.add_argument("--sample-steps", type=at_least(0), default=0, help="timed sampling passes after one warm-up pass")
    parser.add_argument("--flops", action="store_true", help="count the floating-point operations of each pass (not with --adjoint)")
    parser.add_argument("--layout", choices=["channels-last", "contiguous"], default=None,
                        help="activation layout inside the network (newer commits only; without it, the package's own)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network's forward_and_vjp (newer commits only)")
    parser.add_argument("--check-only", action="store_true", help="check the options, stack, level and images, print the stack's levels as JSON and exit without timing")
    arguments = parser.parse_args()
    if arguments.adjoint and arguments.flops:
        # FlopCounterMode's module hooks fail inside the adjoint's autograd.grad call.
        parser.error("--flops cannot count the adjoint method's backward pass; leave out --adjoint or --flops")

    if arguments.layout or arguments.compile:
        from mrcnf_cli import dynamics

        if arguments.layout and not hasattr(dynamics, "ACTIVATION_LAYOUT"):
            fail(f"{PACKAGE_LABEL} has no activation layout setting; leave out --layout")
        if arguments.compile and not hasattr(dynamics.DynamicsNet, "forward_and_vjp"):
            fail(f"{PACKAGE_LABEL} has no DynamicsNet.forward_and_vjp to compile; leave out --compile")
        if arguments.layout:
            dynamics.ACTIVATION_LAYOUT = torch.channels_last if arguments.layout == "channels-last" else torch.contiguous_format
        if arguments.compile:
            dynamics.DynamicsNet.forward_and_vjp = torch.compile(dynamics.DynamicsNet.forward_and_vjp)

    torch.manual_seed(arguments.seed)
    stack = load_stack(arguments.model).stack
    check_package_tree()
    names = [level.config.name for level in stack.levels]
    index = len(names) - 1
    if arguments.level:
        sizes = [tuple(level.config.size) for level in stack.levels]
        try:
            requested = tuple(int(side) for side in arguments.level.lower().split("x"))
        except ValueError:
            requested = None
        if requested not in sizes:
            fail(f"--level {arguments.level} is not a level of this stack; choose one of {', '.join(names)}")
        index = sizes.index(requested)
    batch = fixed_batch(stack, arguments.batch_size, arguments.images, arguments.seed)
    if arguments.check_only:
        print(json.dumps({"levels": names, "level": names[index], "batch_size": len(batch)}))
        return
    loaded_memory = peak_memory_mib()
    reset_peak_memory()
    if arguments.adjoint:
        for block in stack.levels[index].blocks:
            block.config = dataclasses.replace(block.config, adjoint=True)

    if arguments.profile:
        from torch.profiler import ProfilerActivity, profile

        for _ in range(arguments.warmup_steps):
            training_step(stack, index, batch, arguments.seed)
        for name, run in (("training step", training_step), ("evaluation", evaluation)):
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
                run(stack, index, batch, arguments.seed)
            print(f"== {name} ==", file=sys.stderr)
            print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
            print(f"== {name}, by input shape ==", file=sys.stderr)
            averages = profiler.key_averages(group_by_input_shape=True)
            print(averages.table(sort_by="self_cpu_time_total", row_limit=15, max_shapes_column_width=100), file=sys.stderr)

    for _ in range(arguments.warmup_steps):
        training_step(stack, index, batch, arguments.seed)
    train_runs = [training_step(stack, index, batch, arguments.seed) for _ in range(arguments.steps)]
    train_memory = peak_memory_mib()
    eval_runs = [evaluation(stack, index, batch, arguments.seed) for _ in range(arguments.eval_steps + 1)]
    sample_runs = [sampling(stack, index, batch, arguments.seed) for _ in range(arguments.sample_steps + 1)] if arguments.sample_steps else []
    dimensions = math.prod(stack.levels[index].config.variable_shape)

    extra = {}
    if sample_runs:
        extra["sample_seconds_median"] = round(statistics.median(run[0] for run in sample_runs[1:]), 4)
        extra["sample_nfe"] = sample_runs[-1][1]
    if arguments.flops:
        extra["train_flops"] = count_flops(training_step, stack, index, batch, arguments.seed)
        extra["eval_flops"] = count_flops(evaluation, stack, index, batch, arguments.seed)
        if sample_runs:
            extra["sample_flops"] = count_flops(sampling, stack, index, batch, arguments.seed)

    print(json.dumps({
        "machine": machine(),
        "level": names[index],
        "batch_size": len(batch),
        "threads": torch.get_num_threads(),
        "train_seconds": [round(run[0], 4) for run in train_runs],
        "train_seconds_median": round(statistics.median(run[0] for run in train_runs), 4),
        "train_nfe": train_runs[-1][2],
        "train_bits": train_runs[-1][1].double().tolist(),
        "eval_seconds_median": round(statistics.median(run[0] for run in eval_runs[1:]), 4),
        "eval_nfe": eval_runs[-1][2],
        "eval_bits": eval_runs[-1][1].double().tolist(),
        "dimensions": dimensions,
        "package": str(Path(mrcnf_cli.__file__).parent),
        "adjoint": arguments.adjoint,
        "layout": arguments.layout,
        "compile": arguments.compile,
        "memory_after_loading_mib": round(loaded_memory, 1),
        "peak_memory_after_training_mib": round(train_memory, 1),
        "peak_memory_mib": round(max(loaded_memory, peak_memory_mib()), 1),
        **extra,
    }, indent=2))


if __name__ == "__main__":
    run_main(main)
