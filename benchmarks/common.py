"""Helpers the benchmark scripts share: parse options, run an mrcnf command, describe the machine.

Importing this module puts the package of this checkout first on the import path, so that a
script times the code beside it and not another installed copy. ``speedup.py`` names another
tree in ``MRCNF_PACKAGE_TREE`` to time an earlier commit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, NoReturn

REPOSITORY = Path(__file__).resolve().parents[1]
PACKAGE_TREE = Path(os.environ.get("MRCNF_PACKAGE_TREE") or REPOSITORY)
# Name of the package tree in messages. speedup.py sets it to the baseline commit.
PACKAGE_LABEL = os.environ.get("MRCNF_PACKAGE_LABEL") or f"the package in {PACKAGE_TREE}"
# Formats matplotlib writes without an outside program such as LaTeX.
FIGURE_FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
SHARED_DATA = Path(os.environ.get("MRCNF_SHARED_DATA") or REPOSITORY.parent / "shared" / "data")
EXIT_USAGE = 2

sys.path.insert(0, str(PACKAGE_TREE))


def fail(message: str, exit_code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: MESSAGE`` as one line on stderr and exit, by default with code 2 (bad input)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(exit_code)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the script's docstring as written and show each option's default, where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors take one line and exit with code 2, like mrcnf's."""

    def __init__(self, description: str | None):
        super().__init__(description=description, formatter_class=HelpFormatter)

    def error(self, message: str) -> NoReturn:
        fail(f"{message}; see '{self.prog} --help'")


def at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """Return an argparse type that reads a whole number from ``minimum`` to ``maximum`` (no limit: None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid whole number {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    return parse


def positive_number(text: str) -> float:
    """Read a number above 0 (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def existing_path(text: str) -> Path:
    """Read the path of a file or folder that exists (an argparse type)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return path


def existing_file(text: str) -> Path:
    """Read the path of a file that exists (an argparse type)."""
    path = existing_path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a file")
    return path


def figure_path(text: str) -> Path:
    """Read where a figure goes: a file, new or not, in an existing folder, ending in one of FIGURE_FORMATS."""
    path = Path(text)
    if path.suffix.lower() not in FIGURE_FORMATS:
        raise argparse.ArgumentTypeError(f"{text} is not a figure file name; end it with one of {', '.join(FIGURE_FORMATS)}")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"folder {path.parent} does not exist; create it first")
    return path


def check_package_tree() -> None:
    """Exit with code 2 when a loaded mrcnf_cli module comes from outside ``PACKAGE_TREE``.

    An editable install supplies, from its own tree, any module that an older tree lacks, and
    the script would then time a mix of two versions.
    """
    tree = PACKAGE_TREE.resolve()
    for name, module in list(sys.modules.items()):
        source = getattr(module, "__file__", None)
        if name.split(".")[0] == "mrcnf_cli" and source and not Path(source).resolve().is_relative_to(tree):
            fail(f"{PACKAGE_LABEL} has no module {name} (it was loaded from {source}); choose a later commit")


def run_main(main: Callable[[], None]) -> None:
    """Run a script's ``main``; report mrcnf's own errors and Ctrl-C as one line, not a traceback."""
    try:
        main()
    except KeyboardInterrupt:
        fail("interrupted", exit_code=130)
    except Exception as error:
        # Only the errors mrcnf raises on purpose carry an exit code; anything else is a bug to see whole.
        exit_code = getattr(error, "exit_code", None)
        if exit_code is None:
            raise
        fail(str(error), exit_code=exit_code)


def new_model_folder(model: Path, option: str) -> Path:
    """Return ``model`` when it does not exist yet; exit with code 2 when an earlier run left it.

    ``mrcnf train`` resumes a stack it finds, and the resumed stack would have trained for
    longer than the time the result claims.
    """
    for folder in model.parents:
        if folder.exists() and not folder.is_dir():
            fail(f"{option}: {folder} is a file, not a folder; choose a folder")
    if model.exists():
        fail(f"{model} already contains a stack from an earlier run; remove it or choose another {option}")
    return model


def real_data_root() -> Path:
    """Unpack the real image archives (once) into .cache/real-data and return that folder.

    The archives are read from ``$MRCNF_SHARED_DATA``, else from shared/data beside the
    repository; without them the script exits with code 2.
    """
    extract = SHARED_DATA / "extract"
    if not extract.is_file():
        fail(f"real image archives not found at {SHARED_DATA}; set MRCNF_SHARED_DATA to the folder that contains them")
    destination = REPOSITORY / ".cache" / "real-data"
    subprocess.run(["bash", str(extract), str(destination)], check=True)
    return destination


def package_environment(**variables: str) -> dict[str, str]:
    """Return this process's environment with ``variables`` set and the package tree first on PYTHONPATH."""
    python_path = os.pathsep.join(filter(None, [str(PACKAGE_TREE), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **variables, "PYTHONPATH": python_path}


def mrcnf(*arguments, log: Path | None = None) -> tuple[dict | None, float]:
    """Run ``mrcnf ARGUMENTS --json`` from this checkout; return its JSON output and the wall time in seconds.

    The command's stderr (logs and progress) is appended to ``log`` when given. When the command
    fails, its error line is repeated and the script exits with the command's exit code.
    """
    command = [sys.executable, "-m", "mrcnf_cli", *map(str, arguments), "--json"]
    environment = package_environment()
    print("$ mrcnf " + shlex.join(map(str, arguments)) + " --json", file=sys.stderr)

    started = time.monotonic()
    if log is None:
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        errors = result.stderr
    else:
        with open(log, "ab") as stderr:
            start_of_this_call = stderr.tell()
            result = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=environment)
        with open(log, "rb") as written:
            written.seek(start_of_this_call)
            errors = written.read().decode(errors="replace")
    seconds = time.monotonic() - started

    if result.returncode != 0:
        lines = [line.removeprefix("error: ") for line in errors.splitlines() if line.startswith("error: ")]
        reason = f": {lines[-1]}" if lines else ""
        where = f"; full log in {log}" if log else ""
        fail(f"mrcnf {arguments[0]} failed with exit code {result.returncode}{reason}{where}", exit_code=result.returncode)
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
