r"""Train 1-, 2- and 3-level stacks for the same wall time and compare them, by default on CIFAR-10.

    python benchmarks/equal_budget.py --minutes 30 --rounds 3 --out runs/equal-budget \
        --plot docs/equal-budget-cifar10.png > equal-budget.json

Each stack trains in ``--rounds`` calls of ``mrcnf train`` of ``minutes / rounds`` each. Every
call resumes where the previous one stopped, and ``--max-time`` splits its time between the
levels. After each round the stack is evaluated on the first ``--curve-images`` test images,
which gives the points of the plot. After the last round it is also evaluated on the first
``--test-images``, which gives the table. Evaluation uses each level's file, the best by
validation so far, and its time does not count against the budget.

A short trial of the script, a few minutes in all:

    python benchmarks/equal_budget.py --minutes 1 --rounds 1 --levels 1,2 --batch-size 16 \
        --curve-images 20 --test-images 50 --out /tmp/equal-budget-trial > trial.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from common import emit, machine, mrcnf, real_data_root


def level_statistics(model: Path) -> list[dict]:
    """Return the median seconds per step and training NFE of each level, from its metrics.jsonl."""
    rows = []
    for metrics in sorted((model / "runs").glob("level-*/metrics.jsonl")):
        steps = [json.loads(line) for line in metrics.read_text().splitlines()]
        steps = [step for step in steps if "seconds_per_step" in step]
        rows.append({
            "level": metrics.parent.name.removeprefix("level-"),
            "steps": steps[-1]["step"] if steps else 0,
            "median_seconds_per_step": round(statistics.median(step["seconds_per_step"] for step in steps), 3),
            "median_training_nfe": statistics.median(step["nfe"] for step in steps),
        })
    return rows


def plot(results: list[dict], path: Path, curve_images: int, data_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for result in results:
        minutes = [point["train_minutes"] for point in result["curve"]]
        bpd = [point["bpd"] for point in result["curve"]]
        axes.plot(minutes, bpd, marker="o", label=f"{result['levels']} level{'s' if result['levels'] > 1 else ''}")
    axes.set_xlabel("training wall time (minutes, 2 CPU cores)")
    axes.set_ylabel(f"test bits/dim (first {curve_images} images)")
    axes.set_title(f"{data_name}: equal training time")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall time of each stack")
    parser.add_argument("--rounds", type=int, default=3, help="evaluations along the way")
    parser.add_argument("--levels", default="1,2,3", help="stack depths to compare")
    parser.add_argument("--curve-images", type=int, default=200)
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=None, help="data set to train and test on (default: the CIFAR-10 JPEG copy)")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch size")
    parser.add_argument("--out", type=Path, default=Path("runs/equal-budget"))
    parser.add_argument("--plot", type=Path, default=None, help="write the BPD against time plot here")
    arguments = parser.parse_args()

    if arguments.batch_size < 1 or arguments.rounds < 1 or arguments.minutes <= 0:
        sys.exit("--batch-size and --rounds must be at least 1 and --minutes above 0")
    if arguments.data is None:
        data, data_name = real_data_root() / "cifar10-jpg", "CIFAR-10 (JPEG copy), 32x32"
    else:
        data, data_name = arguments.data, str(arguments.data)
    arguments.out.mkdir(parents=True, exist_ok=True)
    log = arguments.out / "log.txt"

    results = []
    for levels in (int(value) for value in arguments.levels.split(",")):
        model = arguments.out / f"levels-{levels}"
        curve = []
        for round_index in range(arguments.rounds):
            trained, _ = mrcnf(
                "train", "--res", levels, "--data", data, "--model", model,
                "--max-time", f"{arguments.minutes / arguments.rounds}m", "--steps", 1000000, "--batch-size", arguments.batch_size,
                "--warmup", 50, "--validate-every", 100, "--validation-images", 64, "--seed", 0, log=log,
            )
            # Each level reports its training seconds over all calls so far, not this call's.
            train_seconds = sum(level["seconds"] for level in trained["levels"])
            point, _ = mrcnf(
                "bpd", "--model", model, "--data", data, "--split", "test", "--max-images", arguments.curve_images,
                "--batch-size", 100, log=log,
            )
            curve.append({"train_minutes": round(train_seconds / 60, 2), "bpd": point["bpd"]})
        evaluated, bpd_seconds = mrcnf(
            "bpd", "--model", model, "--data", data, "--split", "test", "--max-images", arguments.test_images,
            "--batch-size", 100, log=log,
        )
        info, _ = mrcnf("info", "--model", model)
        results.append({
            "levels": levels,
            "parameters": sum(level["parameters"] for level in info["levels"]),
            "train_minutes": round(train_seconds / 60, 2),
            "test_images": evaluated["images"],
            "test_bpd": evaluated["bpd"],
            "test_bpd_std": evaluated["bpd_std"],
            "bpd_shares": [level["bpd_share"] for level in evaluated["levels"]],
            "evaluation_nfe": [level["nfe"] for level in evaluated["levels"]],
            "evaluation_seconds": round(bpd_seconds, 1),
            "per_level": level_statistics(model),
            "curve": curve,
        })

    if arguments.plot:
        plot(results, arguments.plot, arguments.curve_images, data_name)
    emit({
        "benchmark": "equal_budget", "data": data_name, "batch_size": arguments.batch_size, "machine": machine(),
        "results": results,
    })


if __name__ == "__main__":
    main()
