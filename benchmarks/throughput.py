"""Throughput of every level of a trained stack, and the adjoint method against backpropagation.

    python benchmarks/throughput.py --model runs/cifar10/model --images test.npy > throughput.json

Each level runs in a fresh process, so that its peak memory is its own. There ``training_step.py``
times a training step (forward and backward, ``--batch-size`` images), an evaluation pass and a sampling pass
on a fixed batch. It also counts their floating-point operations with torch.utils.flop_counter
and reads the peak resident set size. The achieved rate of each pass is set against this machine's
float32 matrix-multiply rate, measured in the same run. The finest level is then trained once
more with ``--adjoint`` to compare its time and memory with backpropagation through the solver.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from common import ArgumentParser, at_least, emit, existing_file, existing_path, machine, run_main

STEP_SCRIPT = Path(__file__).with_name("training_step.py")


def matmul_rate(size: int = 2048, repeats: int = 10) -> float:
    """Measure the best float32 matrix-multiply rate of this process, FLOP/s."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def run_level(arguments: list[str]) -> dict:
    """Run training_step.py in a fresh process; return its JSON result.

    When it fails, its own error line is on stderr already, and this script exits with its code.
    """
    result = subprocess.run([sys.executable, str(STEP_SCRIPT), *arguments], stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.exit(result.returncode)
    return json.loads(result.stdout) if result.stdout else {}


def main() -> None:
    parser = ArgumentParser(__doc__)
    parser.add_argument("--model", type=existing_path, required=True, help="a trained stack directory")
    parser.add_argument("--images", type=existing_file, default=None,
                        help=".npy of uint8 images (N, C, H, W) at the stack's size; without it, seeded noise")
    parser.add_argument("--batch-size", type=at_least(1), default=64, help="images per pass")
    parser.add_argument("--steps", type=at_least(1), default=3, help="timed training steps per level")
    arguments = parser.parse_args()

    common = ["--model", str(arguments.model), "--batch-size", str(arguments.batch_size), "--steps", str(arguments.steps)]
    if arguments.images:
        common += ["--images", str(arguments.images)]

    # Check the stack and images, and find its trained levels, before the matrix-multiply rate is measured.
    names = run_level([*common, "--check-only"])["levels"]
    peak = matmul_rate()
    print(f"float32 matmul: {peak / 1e9:.1f} GFLOP/s", file=sys.stderr)

    levels = []
    for name in names:
        run = run_level([*common, "--level", name, "--eval-steps", "2", "--sample-steps", "2", "--flops"])
        row = {
            "level": name,
            "train_seconds_per_step": run["train_seconds_median"],
            "train_nfe": run["train_nfe"],
            "eval_images_per_second": round(arguments.batch_size / run["eval_seconds_median"], 2),
            "eval_nfe": run["eval_nfe"],
            "sample_images_per_second": round(arguments.batch_size / run["sample_seconds_median"], 2),
            "sample_nfe": run["sample_nfe"],
            "peak_memory_mib": run["peak_memory_mib"],
        }
        for name_of_pass, seconds in (("train", run["train_seconds_median"]), ("eval", run["eval_seconds_median"]), ("sample", run["sample_seconds_median"])):
            rate = run[f"{name_of_pass}_flops"] / seconds
            row[f"{name_of_pass}_gflop_per_second"] = round(rate / 1e9, 1)
            row[f"{name_of_pass}_fraction_of_matmul"] = round(rate / peak, 3)
        levels.append(row)
        print(json.dumps(row), file=sys.stderr)

    finest = names[-1]
    methods = {}
    for method, flag in (("backpropagation", []), ("adjoint", ["--adjoint"])):
        run = run_level([*common, "--level", finest, "--eval-steps", "1", *flag])
        methods[method] = {
            "train_seconds_per_step": run["train_seconds_median"],
            "forward_nfe": run["train_nfe"],
            "memory_after_loading_mib": run["memory_after_loading_mib"],
            "peak_memory_in_training_mib": run["peak_memory_after_training_mib"],
            "memory_growth_in_training_mib": round(run["peak_memory_after_training_mib"] - run["memory_after_loading_mib"], 1),
        }
        print(method, json.dumps(methods[method]), file=sys.stderr)

    emit({
        "benchmark": "throughput",
        "machine": machine(),
        "model": str(arguments.model),
        "batch_size": arguments.batch_size,
        "matmul_gflop_per_second": round(peak / 1e9, 1),
        "levels": levels,
        "finest_level_training": methods,
    })


if __name__ == "__main__":
    run_main(main)
