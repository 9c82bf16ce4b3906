"""OOD detection and patch shuffling with a stack trained on CIFAR-10 (JPEG copy).

    python benchmarks/ood_cifar10.py --model runs/cifar10/model --images 1000 --plot docs/ood-cifar10.png > result.json
"""

from __future__ import annotations

from pathlib import Path

from common import ArgumentParser, at_least, emit, existing_path, figure_path, machine, mrcnf, real_data_root, run_main


def main() -> None:
    parser = ArgumentParser(__doc__)
    parser.add_argument("--model", type=existing_path, required=True, help="a stack trained on CIFAR-10 at 32x32")
    parser.add_argument("--images", type=at_least(1), default=1000, help="images per set")
    parser.add_argument("--shuffle-images", type=at_least(1), default=200, help="test images for the patch-shuffling curve")
    parser.add_argument("--plot", type=figure_path, default="docs/ood-cifar10.png", help="histogram of BPD per set")
    parser.add_argument("--shuffle-plot", type=figure_path, default="docs/shuffle-cifar10.png", help="BPD against patch size")
    parser.add_argument("--log", type=Path, default=Path("runs/ood-log.txt"), help="the commands' logs are appended here")
    arguments = parser.parse_args()

    root = real_data_root()
    cifar = root / "cifar10-jpg"
    arguments.log.parent.mkdir(parents=True, exist_ok=True)

    ood, ood_seconds = mrcnf(
        "ood", "--model", arguments.model, "--data", cifar, "--data-dir", root, "--ood", "tinyimagenet",
        "--ood", "constant", "--ood", "noise", "--max-images", arguments.images, "--batch-size", 100,
        "--plot", arguments.plot, log=arguments.log,
    )
    shuffled, shuffle_seconds = mrcnf(
        "shuffle-eval", "--model", arguments.model, "--data", cifar, "--patch", "1,2,4,8,16,32",
        "--max-images", arguments.shuffle_images, "--batch-size", 100, "--plot", arguments.shuffle_plot, log=arguments.log,
    )
    emit({
        "benchmark": "ood_cifar10",
        "data": "CIFAR-10 (JPEG copy) test vs Tiny ImageNet val (box-downsampled to 32x32), constant, noise",
        "machine": machine(),
        "ood": ood, "ood_seconds": round(ood_seconds, 1),
        "shuffle": shuffled, "shuffle_seconds": round(shuffle_seconds, 1),
    })


if __name__ == "__main__":
    run_main(main)
