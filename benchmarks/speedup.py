"""Compare one level's training step between this checkout and an earlier commit, side by side.

    python benchmarks/speedup.py --model runs/cifar10/model --baseline 6373132 --rounds 3 > speedup.json

The earlier commit is checked out into a temporary git worktree. Both trees run
``training_step.py`` (from this checkout) on the same stack, batch, noise and probes, taking turns
so that both meet the same machine load. The result gives the median step time of each, the
speedup, and the largest difference of their per-image bits per dimension.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPOSITORY, ArgumentParser, at_least, emit, existing_file, existing_path, fail, machine, run_main

STEP_SCRIPT = Path(__file__).with_name("training_step.py")


def run_step(tree: Path, label: str, arguments: list[str]) -> dict:
    """Run training_step.py with the package imported from ``tree``, named ``label`` in messages; return its JSON result.

    When it fails, its own error line is on stderr already, and this script exits with its code.
    """
    environment = dict(os.environ, MRCNF_PACKAGE_TREE=str(tree), MRCNF_PACKAGE_LABEL=label)
    result = subprocess.run([sys.executable, str(STEP_SCRIPT), *arguments], env=environment, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.exit(result.returncode)
    return json.loads(result.stdout) if result.stdout else {}


def resolve_commit(name: str) -> str:
    """Return the full hash of commit ``name`` in this repository; exit with code 2 when there is none."""
    checkout = subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse", "--git-dir"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if checkout.returncode != 0:
        fail(f"{REPOSITORY} is not a git checkout; speedup.py needs one to check out the baseline, so run it from a clone")
    result = subprocess.run(
        ["git", "-C", str(REPOSITORY), "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    if result.returncode != 0:
        fail(f"--baseline {name} is not a commit of {REPOSITORY}; give a hash, tag or branch from git log")
    return result.stdout.strip()


def has_uncommitted_changes() -> bool:
    """Return whether this checkout's tracked files differ from its HEAD commit."""
    status = subprocess.run(["git", "-C", str(REPOSITORY), "status", "--porcelain", "--untracked-files=no"], stdout=subprocess.PIPE, text=True)
    return bool(status.stdout.strip())


def largest_difference(first: list[float], second: list[float]) -> float:
    return max(abs(a - b) for a, b in zip(first, second, strict=True))


def largest_relative_logp_difference(first: list[float], second: list[float]) -> float:
    """Largest relative difference of the images' log-likelihoods, given in bits per dimension."""
    return max(abs(a - b) / abs(a) for a, b in zip(first, second, strict=True))


def main() -> None:
    parser = ArgumentParser(__doc__)
    parser.add_argument("--model", type=existing_path, required=True, help="a trained stack directory both commits can load")
    parser.add_argument("--baseline", required=True, help="the earlier commit, for example 6373132")
    parser.add_argument("--level", default=None, help="level to time, for example 32x32 (default: the finest)")
    parser.add_argument("--images", type=existing_file, default=None, help=".npy of uint8 images (N, C, H, W); without it, seeded noise")
    parser.add_argument("--batch-size", type=at_least(1), default=64, help="images per training step")
    parser.add_argument("--rounds", type=at_least(1), default=3, help="turns each tree takes")
    parser.add_argument("--steps", type=at_least(1), default=3, help="timed training steps per turn")
    arguments = parser.parse_args()
    baseline_commit = resolve_commit(arguments.baseline)

    step_arguments = [
        "--model", str(arguments.model), "--steps", str(arguments.steps), "--eval-steps", "1",
        "--batch-size", str(arguments.batch_size),
    ]
    if arguments.level:
        step_arguments += ["--level", arguments.level]
    if arguments.images:
        step_arguments += ["--images", str(arguments.images)]

    # Check the stack, level and images with this checkout before the baseline is checked out.
    run_step(REPOSITORY, "this checkout", [*step_arguments, "--check-only"])

    with tempfile.TemporaryDirectory() as scratch:
        baseline_tree = Path(scratch) / "baseline"
        subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "add", "--quiet", "--detach", str(baseline_tree), baseline_commit], check=True, stdout=sys.stderr)
        try:
            runs = {"baseline": [], "current": []}
            for round_index in range(arguments.rounds):
                trees = (("baseline", baseline_tree, f"commit {arguments.baseline}"), ("current", REPOSITORY, "this checkout"))
                for name, tree, label in trees:
                    runs[name].append(run_step(tree, label, step_arguments))
                    print(f"round {round_index + 1}, {name}: {runs[name][-1]['train_seconds_median']} s/step", file=sys.stderr)
        finally:
            subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(baseline_tree)], check=True)

    def summary(name: str) -> dict:
        return {
            "train_seconds_median": statistics.median(s for run in runs[name] for s in run["train_seconds"]),
            "eval_seconds_median": statistics.median(run["eval_seconds_median"] for run in runs[name]),
            "train_nfe": runs[name][-1]["train_nfe"],
            "eval_nfe": runs[name][-1]["eval_nfe"],
            "package": runs[name][-1]["package"],
        }

    baseline, current = summary("baseline"), summary("current")
    first, last = runs["baseline"][-1], runs["current"][-1]
    emit({
        "benchmark": "speedup",
        "machine": machine(),
        "baseline_commit": baseline_commit,
        "current_commit": resolve_commit("HEAD"),
        "current_uncommitted_changes": has_uncommitted_changes(),
        "level": last["level"],
        "batch_size": last["batch_size"],
        "baseline": baseline,
        "current": current,
        "train_speedup": round(baseline["train_seconds_median"] / current["train_seconds_median"], 3),
        "eval_speedup": round(baseline["eval_seconds_median"] / current["eval_seconds_median"], 3),
        "train_bits_largest_difference": largest_difference(first["train_bits"], last["train_bits"]),
        "eval_bits_largest_difference": largest_difference(first["eval_bits"], last["eval_bits"]),
        "train_logp_largest_relative_difference": largest_relative_logp_difference(first["train_bits"], last["train_bits"]),
        "eval_logp_largest_relative_difference": largest_relative_logp_difference(first["eval_bits"], last["eval_bits"]),
        "dimensions": last["dimensions"],
    })


if __name__ == "__main__":
    run_main(main)
