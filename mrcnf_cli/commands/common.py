"""Helpers every subcommand shares: logging on stderr and domain errors turned into exit codes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler

from mrcnf_cli.cnf import PROBES, TRACE_ESTIMATORS
from mrcnf_cli.data import DATASETS
from mrcnf_cli.distributed import world_from_environment
from mrcnf_cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, InputError, MrcnfError
from mrcnf_cli.multires import PYRAMID_MAPS
from mrcnf_cli.solvers import SOLVERS

logger = logging.getLogger("mrcnf_cli")

# Width of tables and text printed to stdout when it is not a terminal, so that a table piped to
# a file or a pager is not cut at Rich's default of 80 columns.
PIPED_OUTPUT_WIDTH = 1000


def output_console() -> Console:
    """Return the console for results on stdout: the terminal's width, or wide enough when piped.

    A ``COLUMNS`` environment variable still sets the width, as Rich reads it.
    """
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return Console()
    return Console(width=PIPED_OUTPUT_WIDTH)


def setup_logging(*, verbose: bool = False, quiet: bool = False) -> None:
    """Send log records to stderr: rich formatting on a terminal, plain lines otherwise."""
    level = logging.INFO
    if verbose:
        level = logging.DEBUG
    elif quiet:
        level = logging.ERROR
    if not is_main_process():
        # In a torchrun job only rank 0 logs progress; the other processes log errors.
        level = logging.ERROR
    if sys.stderr.isatty():
        handler: logging.Handler = RichHandler(show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)


@contextlib.contextmanager
def command_errors(*, verbose: bool = False) -> Iterator[None]:
    """Turn a domain error into one line on stderr and its exit code; tracebacks only when verbose."""
    try:
        yield
    except MrcnfError as error:
        if verbose:
            traceback.print_exc(file=sys.stderr)
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except MemoryError:
        typer.echo("error: out of memory; lower --batch-size", err=True)
        raise typer.Exit(EXIT_FAILURE) from None


def completer(names: Iterable[str]) -> Callable[[str], list[str]]:
    """Return a shell-completion callback that offers the names starting with what was typed."""
    choices = sorted(names)

    def complete(incomplete: str) -> list[str]:
        return [name for name in choices if name.startswith(incomplete)]

    return complete


complete_dataset = completer(DATASETS)
complete_solver = completer(SOLVERS)
complete_map = completer(PYRAMID_MAPS)
complete_trace = completer(TRACE_ESTIMATORS)
complete_probe = completer(PROBES)
complete_device = completer(["auto", "cpu", "cuda", "cuda:0"])


def is_main_process() -> bool:
    """Return False in every process of a torchrun job except rank 0.

    A process without WORLD_SIZE above 1 runs alone and is the main one, whatever the value of RANK. An
    unreadable variable counts as main too, so that the error it causes gets printed.
    """
    try:
        return world_from_environment().is_main
    except InputError:
        return True


def default_model_dir() -> str:
    return os.environ.get("MRCNF_MODEL", "mrcnf-model")


def default_device() -> str:
    return os.environ.get("MRCNF_DEVICE", "auto")


ModelOption = Annotated[
    Path,
    typer.Option("--model", "-m", help="Stack directory. Default: $MRCNF_MODEL, else ./mrcnf-model.", show_default=False),
]
DataDirOption = Annotated[
    Optional[Path],
    typer.Option("--data-dir", help="Folder holding the named data sets. Default: $MRCNF_DATA, else ./data.", show_default=False),
]
DeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        help="auto, cpu, cuda or cuda:N. Default: $MRCNF_DEVICE, else auto (CUDA when present).",
        show_default=False,
        autocompletion=complete_device,
    ),
]
# torch takes seeds up to 2**64 - 1.
SEED_MAX = 2**64 - 1
SeedOption = Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="Random seed (data order, dequantization noise, probes).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of a table.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only results and errors.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages and show tracebacks.")]
ConvertOption = Annotated[
    bool,
    typer.Option("--convert/--no-convert", help="Allow lossy conversions of image modes (alpha, 16-bit, colour to grey)."),
]


def print_json(values: dict) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json.dumps(values, indent=2) + "\n")
    sys.stdout.flush()


def read_paths_from_stdin(paths: list[Path] | None) -> list[Path] | None:
    """Replace a single "-" argument by the paths read from stdin, one per line."""
    if paths and [str(path) for path in paths] == ["-"]:
        read = [Path(line.strip()) for line in sys.stdin if line.strip()]
        if not read:
            raise InputError("no image paths on stdin; pipe one path per line, for example: find imgs -name '*.png' | mrcnf bpd -")
        return read
    return paths

