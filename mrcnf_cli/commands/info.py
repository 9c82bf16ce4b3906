"""`mrcnf info`: what a stack directory holds, and whether its files are complete."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from mrcnf_cli.app import app
from mrcnf_cli.commands.common import (
    JsonOption,
    ModelOption,
    QuietOption,
    VerboseOption,
    command_errors,
    default_model_dir,
    output_console,
    print_json,
    setup_logging,
)
from mrcnf_cli.store import describe_stack


@app.command()
def info(
    model: ModelOption = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Show the levels of a stack coarse to fine: resolution, parameters, training and file status."""
    setup_logging(verbose=verbose, quiet=quiet)
    with command_errors(verbose=verbose):
        description = describe_stack(Path(model or default_model_dir()))

    if json_output:
        print_json(description)
        return

    state = "complete" if description["complete"] else "INCOMPLETE"
    table = Table(title=f"{description['model']}: map {description['map']}, {description['channels']} channels, {state}")
    for column in ("level", "status", "parameters", "hidden", "logit alpha", "data", "steps", "validation bits/dim", "bytes"):
        table.add_column(column)
    for level in description["levels"]:
        table.add_row(
            level["resolution"],
            level["status"],
            str(level.get("parameters", "-")),
            ",".join(map(str, level.get("hidden", []))) or "-",
            "-" if level.get("alpha") is None else str(level["alpha"]),
            str(level.get("data") or "-"),
            str(level.get("steps") if level.get("steps") is not None else "-"),
            "-" if level.get("validation_bpd") is None else f"{level['validation_bpd']:.4f}",
            str(level["file_bytes"] or "-"),
        )
    output_console().print(table)
