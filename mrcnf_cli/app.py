"""The `mrcnf` command-line application: the Typer app and its subcommands."""

from __future__ import annotations

import typer

from mrcnf_cli import __version__
from mrcnf_cli.commands.group import CommandGroup

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 2 bad usage or bad input; 1 runtime failure; 130 interrupted (after saving state)."
)

app = typer.Typer(
    name="mrcnf",
    cls=CommandGroup,
    help="Multi-resolution continuous normalizing flows: train, evaluate and sample exact-likelihood "
    "image models.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mrcnf {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Multi-resolution continuous normalizing flows."""


# Register the subcommands on the app.
from mrcnf_cli.commands import bpd, extend, info, ood, sample, shuffle_eval, superres, train  # noqa: E402, F401
