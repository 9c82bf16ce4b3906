"""Seconds per training step of one level: one process against torchrun with N processes (gloo on CPU).

Both runs use the same global batch: the single process takes all of it, each of the N
processes takes 1/N. Each run gets the machine's cores shared out evenly.

    python benchmarks/ddp_speedup.py --processes 2 --steps 20 > result.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ArgumentParser, at_least, emit, fail, machine, package_environment, real_data_root, run_main


def seconds_per_step(model: Path) -> float:
    """Return the median seconds per step recorded in the level's metrics, skipping the first step."""
    lines = (model / "runs" / "level-32x32" / "metrics.jsonl").read_text().splitlines()
    values = sorted(row["seconds_per_step"] for row in map(json.loads, lines) if "seconds_per_step" in row and row["step"] > 1)
    return values[len(values) // 2]


def main() -> None:
    parser = ArgumentParser(__doc__)
    parser.add_argument("--processes", type=at_least(2), default=2, help="processes of the data-parallel run")
    parser.add_argument("--steps", type=at_least(2), default=20, help="training steps of each run; the first is not timed")
    parser.add_argument("--global-batch", type=at_least(1), default=64, help="images per step over all processes")
    arguments = parser.parse_args()
    if arguments.global_batch % arguments.processes:
        parser.error(f"--global-batch {arguments.global_batch} does not split evenly over {arguments.processes} processes; choose a multiple")

    data = real_data_root() / "cifar10-jpg"
    common = ["train", "--res", "3", "--level", "32x32", "--data", str(data), "--steps", str(arguments.steps),
              "--validate-every", "1000", "--validation-images", "16", "--solver", "rk4", "--step-size", "0.25",
              "--device", "cpu", "-q", "--json"]
    cores = os.cpu_count() or 1
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        runs = {
            "1 process": ([sys.executable, "-m", "mrcnf_cli", *common, "--batch-size", str(arguments.global_batch)], cores),
            f"{arguments.processes} processes": (
                [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(arguments.processes), "-m", "mrcnf_cli",
                 *common, "--batch-size", str(arguments.global_batch // arguments.processes)],
                max(1, cores // arguments.processes),
            ),
        }
        for name, (command, threads) in runs.items():
            model = Path(folder) / name.replace(" ", "-")
            started = time.monotonic()
            environment = package_environment(OMP_NUM_THREADS=str(threads))
            finished = subprocess.run([*command, "--model", str(model)], env=environment, stdout=subprocess.DEVNULL)
            if finished.returncode != 0:
                fail(f"the {name} run failed with exit code {finished.returncode}; its error is above", exit_code=finished.returncode)
            results[name] = {"threads_per_process": threads, "wall_seconds": round(time.monotonic() - started, 1),
                             "seconds_per_step": round(seconds_per_step(model), 3)}

    single, parallel = results["1 process"], results[f"{arguments.processes} processes"]
    emit({
        "benchmark": "ddp_speedup",
        "data": "CIFAR-10 (JPEG copy), level 32x32, rk4 with step 0.25",
        "machine": machine(),
        "global_batch": arguments.global_batch,
        "steps": arguments.steps,
        "runs": results,
        "speedup": round(single["seconds_per_step"] / parallel["seconds_per_step"], 2),
    })


if __name__ == "__main__":
    run_main(main)
