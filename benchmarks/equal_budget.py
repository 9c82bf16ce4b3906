r"""Train 1-, 2- and 3-level stacks for the same wall time and compare them, by default on CIFAR-10.

    python benchmarks/equal_budget.py --minutes 30 --rounds 3 --out runs/equal-budget \
        --plot docs/equal-budget-cifar10.png > equal-budget.json

Each stack trains in ``--rounds`` calls of ``mrcnf train`` of ``minutes / rounds`` each. Every
call resumes where the previous one stopped, and ``--max-time`` splits its time between the
levels. The stacks go to ``--out``/levels-N, which must not exist yet: a stack left by an
earlier run would resume and train for longer than the budget. After each round the stack is
evaluated on the first ``--curve-images`` test images, which gives the points of the plot. After the last round it is also evaluated on the first
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
from pathlib import Path

from common import (
    ArgumentParser,
    at_least,
    emit,
    existing_path,
    figure_path,
    machine,
    mrcnf,
    new_model_folder,
    positive_number,
    real_data_root,
    run_main,
)


def depths(text: str) -> list[int]:
    """Read a comma-separated list of stack depths, for example ``1,2,3`` (an argparse type)."""
    try:
        values = [int(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid list {text!r}; give depths separated by commas, for example 1,2,3") from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"each depth must be at least 1, got {text}")
    if len(set(values)) < len(values):
        raise argparse.ArgumentTypeError(f"depths repeat in {text}; give each once")
    return values


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
    parser = ArgumentParser(__doc__)
    parser.add_argument("--minutes", type=positive_number, default=30.0, help="training wall time of each stack; the stacks train one after another")
    parser.add_argument("--rounds", type=at_least(1), default=3,
                        help="calls of mrcnf train that share the minutes; the stack is evaluated after each")
    parser.add_argument("--levels", type=depths, default="1,2,3", help="stack depths to compare, separated by commas")
    parser.add_argument("--curve-images", type=at_least(1), default=200, help="first test images evaluated after each round")
    parser.add_argument("--test-images", type=at_least(1), default=1000, help="first test images evaluated at the end")
    parser.add_argument("--data", type=existing_path, default=None,
                        help="image folder or data set file to train and test on (default: the CIFAR-10 JPEG copy)")
    parser.add_argument("--batch-size", type=at_least(1), default=64, help="training batch size")
    parser.add_argument("--out", type=Path, default=Path("runs/equal-budget"),
                        help="folder for the stacks and the log; its levels-N folders must not exist yet")
    parser.add_argument("--plot", type=figure_path, default=None, help="write the BPD against time plot here, for example curve.png (without it, no plot)")
    arguments = parser.parse_args()

    # The deepest stack trains first: a depth the image size cannot take then fails before any training.
    depths_deepest_first = sorted(arguments.levels, reverse=True)
    models = {levels: new_model_folder(arguments.out / f"levels-{levels}", "--out") for levels in depths_deepest_first}
    if arguments.data is None:
        data, data_name = real_data_root() / "cifar10-jpg", "CIFAR-10 (JPEG copy), 32x32"
    else:
        data, data_name = arguments.data, str(arguments.data)
    arguments.out.mkdir(parents=True, exist_ok=True)
    log = arguments.out / "log.txt"

    results = []
    for levels, model in models.items():
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

    results.sort(key=lambda result: result["levels"])
    if arguments.plot:
        plot(results, arguments.plot, arguments.curve_images, data_name)
    emit({
        "benchmark": "equal_budget", "data": data_name, "batch_size": arguments.batch_size, "machine": machine(),
        "results": results,
    })


if __name__ == "__main__":
    run_main(main)
