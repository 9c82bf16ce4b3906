"""Helpers every subcommand shares: logging on stderr and domain errors turned into exit codes."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator

import typer
from rich.logging import RichHandler

from mrcnf_cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, MrcnfError

logger = logging.getLogger("mrcnf_cli")


def setup_logging(*, verbose: bool = False, quiet: bool = False) -> None:
    """Send log records to stderr: rich formatting on a terminal, plain lines otherwise."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
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
