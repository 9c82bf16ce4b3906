"""Train a 3-level stack on Tiny ImageNet (16, 32, 64), extend it to 128x128 with ImageNet
photographs, evaluate both stacks, and super-resolve held-out 32x32 downsamplings to 128x128.

    python benchmarks/tinyimagenet_extend_superres.py --train-minutes 24 --extend-minutes 10 \\
        --figure docs/superres-128.png > result.json
"""

from __future__ import annotations

import shutil
from pathlib import Path

from common import (
    ArgumentParser,
    at_least,
    emit,
    figure_path,
    machine,
    mrcnf,
    new_model_folder,
    positive_number,
    real_data_root,
    run_main,
)


def main() -> None:
    parser = ArgumentParser(__doc__)
    parser.add_argument("--train-minutes", type=positive_number, default=24.0, help="training wall time of the 3 levels together")
    parser.add_argument("--extend-minutes", type=positive_number, default=10.0, help="training wall time of the 128x128 level")
    parser.add_argument("--eval-images", type=at_least(1), default=200, help="Tiny ImageNet validation images to evaluate")
    parser.add_argument("--superres-images", type=at_least(1), default=6, help="held-out photographs to super-resolve")
    parser.add_argument("--figure", type=figure_path, default="docs/superres-128.png", help="comparison figure of the super-resolutions")
    parser.add_argument("--out", type=Path, default=Path("runs/tinyimagenet"), help="folder for the model, outputs and log; must not hold a model yet")
    arguments = parser.parse_args()

    model = new_model_folder(arguments.out / "model", "--out")
    root = real_data_root()
    log = arguments.out / "log.txt"
    arguments.out.mkdir(parents=True, exist_ok=True)
    photographs = root / "imagenet-sample-128"

    # 1. Three levels on Tiny ImageNet at 64x64.
    trained, train_seconds = mrcnf(
        "train", "--res", 3, "--data", "tinyimagenet", "--data-dir", root, "--model", model,
        "--max-time", f"{arguments.train_minutes}m", "--steps", 100000, "--batch-size", 32, "--warmup", 50,
        "--validate-every", 100, "--validation-images", 32, "--seed", 0, log=log,
    )
    bpd_64, bpd_64_seconds = mrcnf(
        "bpd", "--model", model, "--data", "tinyimagenet", "--data-dir", root, "--max-images", arguments.eval_images,
        "--batch-size", 50, log=log,
    )

    # 2. A fourth level at 128x128, trained on the ImageNet photographs (every 10th is held out).
    extended, extend_seconds = mrcnf(
        "extend", "--model", model, "--data", photographs, "--max-time", f"{arguments.extend_minutes}m",
        "--steps", 100000, "--batch-size", 16, "--warmup", 20, "--validate-every", 50, "--validation-images", 16,
        "--seed", 0, log=log,
    )
    bpd_128, bpd_128_seconds = mrcnf(
        "bpd", "--model", model, "--data", photographs, "--split", "test", "--max-images", 100, "--batch-size", 25, log=log,
    )
    bpd_64_again, _ = mrcnf(
        "bpd", "--model", model, "--data", "tinyimagenet", "--data-dir", root, "--max-images", arguments.eval_images,
        "--batch-size", 50, log=log,
    )

    # 3. Held-out photographs reduced to 32x32, generated back to 128x128.
    held_out = sorted(photographs.glob("*.png"))[9::10][: arguments.superres_images]
    inputs = arguments.out / "superres-inputs"
    inputs.mkdir(exist_ok=True)
    for path in held_out:
        shutil.copy(path, inputs / path.name)
    superres, superres_seconds = mrcnf(
        "superres", *sorted(inputs.glob("*.png")), "--model", model, "--from-high", "32x32", "--to", "128x128",
        "--samples", 3, "--temperature", 0.8, "--out", arguments.out / "superres", "--compare", arguments.figure, log=log,
    )
    info, _ = mrcnf("info", "--model", model)

    emit({
        "benchmark": "tinyimagenet_extend_superres",
        "data": {"train": "Tiny ImageNet (JPEG, 64x64)", "extend": "ImageNet sample, 1000 photographs at 128x128 (PNG)"},
        "machine": machine(),
        "train": trained, "train_seconds": round(train_seconds, 1),
        "bpd_64": bpd_64, "bpd_64_seconds": round(bpd_64_seconds, 1),
        "extend": extended, "extend_seconds": round(extend_seconds, 1),
        "bpd_128": bpd_128, "bpd_128_seconds": round(bpd_128_seconds, 1),
        "bpd_64_after_extend": bpd_64_again,
        "superres": superres, "superres_seconds": round(superres_seconds, 1),
        "info": info,
    })


if __name__ == "__main__":
    run_main(main)
