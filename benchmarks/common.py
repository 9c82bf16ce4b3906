"""Helpers the benchmark scripts share: run an mrcnf command, time it, describe the machine."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MRCNF_SHARED_DATA") or REPOSITORY.parent / "shared" / "data")


def real_data_root() -> Path:
    """Unpack the real image archives (once) and return where they are; exit when they are absent."""
    extract = SHARED_DATA / "extract"
    if not extract.is_file():
        sys.exit(f"real image archives not found at {SHARED_DATA}; set MRCNF_SHARED_DATA")
    destination = REPOSITORY / ".cache" / "real-data"
    subprocess.run(["bash", str(extract), str(destination)], check=True)
    return destination


def mrcnf(*arguments, log: Path | None = None) -> tuple[dict | None, float]:
    """Run ``mrcnf ARGUMENTS --json``; return its JSON output and the wall time in seconds.

    The command's stderr (logs and progress) is appended to ``log`` when given.
    """
    command = [sys.executable, "-m", "mrcnf_cli", *map(str, arguments), "--json"]
    print("$ mrcnf " + shlex.join(map(str, arguments)) + " --json", file=sys.stderr)
    started = time.monotonic()
    with open(log or os.devnull, "a") as stderr:
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"mrcnf {arguments[0]} failed with exit code {result.returncode}; see {log}")
    return json.loads(result.stdout), seconds


def machine() -> dict:
    """Describe the machine and software the benchmark ran on."""
    import torch

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }


def emit(result: dict) -> None:
    """Print the benchmark's result as one JSON document on stdout."""
    print(json.dumps(result, indent=2))
