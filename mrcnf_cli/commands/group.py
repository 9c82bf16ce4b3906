"""The Typer group behind `mrcnf`, which prints a command-line usage error as one line."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from mrcnf_cli.errors import EXIT_OK

try:  # Recent Typer releases ship their own copy of Click as typer._click.
    from typer._click.exceptions import ClickException, UsageError
except ImportError:
    from click.exceptions import ClickException, UsageError


def usage_error_line(error: ClickException, command_path: str) -> str:
    """Return the one line that reports a Click error, with the help command for a usage error.

    ``command_path`` names the command when the error carries no context: Click raises some
    parser errors, such as an option given without its value, before it builds one.
    """
    message = " ".join(error.format_message().split()).rstrip(".")
    if not isinstance(error, UsageError):
        return f"error: {message}"

    context = getattr(error, "ctx", None)
    if context is not None:
        command_path = context.command_path
    return f"error: {message}; see '{command_path} --help'"


class CommandGroup(TyperGroup):
    """The `mrcnf` command group: a Typer group whose parse errors take one line on stderr.

    Typer draws a usage error as a usage line, a hint and a framed message. Scripts read stderr
    line by line, so the error becomes one ``error: ...`` line with exit code 2, like the errors
    the commands raise themselves.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)

        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except ClickException as error:
            # Typer has printed the help already when the command was called without arguments.
            if type(error).__name__ != "NoArgsIsHelpError":
                typer.echo(usage_error_line(error, self._command_path(args, prog_name)), err=True)
            sys.exit(error.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)

        # Without standalone mode, Click returns the exit code a command raised, or what it returned.
        sys.exit(result if isinstance(result, int) else EXIT_OK)

    def _command_path(self, args: Any, prog_name: str | None) -> str:
        """Return the program name, followed by the subcommand when the arguments name one."""
        arguments = list(sys.argv[1:] if args is None else args)
        program = prog_name or self.name or "mrcnf"
        if arguments and arguments[0] in self.commands:
            return f"{program} {arguments[0]}"
        return program
