"""Train a 3-level stack on CIFAR-10 (JPEG copy) for a fixed wall time, then evaluate its test BPD.

    python benchmarks/cifar10_stack.py --minutes 20 --test-images 1000 --out runs/cifar10 > result.json
"""

from __future__ import annotations

from pathlib import Path

from common import ArgumentParser, at_least, emit, machine, mrcnf, new_model_folder, positive_number, real_data_root, run_main


def main() -> None:
    parser = ArgumentParser(__doc__)
    parser.add_argument("--minutes", type=positive_number, default=20.0, help="training wall time for all levels together")
    parser.add_argument("--test-images", type=at_least(1), default=1000, help="first test images to evaluate")
    parser.add_argument("--out", type=Path, default=Path("runs/cifar10"), help="folder for the model and the log; must not hold a model yet")
    arguments = parser.parse_args()

    model = new_model_folder(arguments.out / "model", "--out")
    data = real_data_root() / "cifar10-jpg"
    log = arguments.out / "log.txt"
    arguments.out.mkdir(parents=True, exist_ok=True)

    trained, train_seconds = mrcnf(
        "train", "--res", 3, "--data", data, "--model", model, "--max-time", f"{arguments.minutes}m",
        "--steps", 100000, "--batch-size", 64, "--warmup", 50, "--validate-every", 100,
        "--validation-images", 64, "--seed", 0, log=log,
    )
    evaluated, bpd_seconds = mrcnf(
        "bpd", "--model", model, "--data", data, "--split", "test", "--max-images", arguments.test_images,
        "--batch-size", 100, log=log,
    )
    info, _ = mrcnf("info", "--model", model)

    emit({
        "benchmark": "cifar10_stack",
        "data": "CIFAR-10 (JPEG copy)",
        "machine": machine(),
        "train": trained,
        "train_seconds": round(train_seconds, 1),
        "bpd": evaluated,
        "bpd_seconds": round(bpd_seconds, 1),
        "parameters": [level["parameters"] for level in info["levels"]],
    })


if __name__ == "__main__":
    run_main(main)
