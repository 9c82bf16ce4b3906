"""Shell completion scripts for bash, zsh and fish, rendered from the Typer app.

The scripts are small stubs that call ``mrcnf`` back with ``_MRCNF_COMPLETE`` set, so the
subcommands, options and registry names offered are always those of the installed version.
Regenerate the committed copies with ``python -m mrcnf_cli.completion completions``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# NOTE: typer exposes script rendering only through this private module (typer 0.29); its public
# --show-completion option renders for the detected login shell alone.
from typer._completion_shared import get_completion_script

SHELLS = {"bash": "mrcnf.bash", "zsh": "_mrcnf", "fish": "mrcnf.fish"}


def render(shell: str) -> str:
    """Return the completion script of ``mrcnf`` for one shell."""
    return get_completion_script(prog_name="mrcnf", complete_var="_MRCNF_COMPLETE", shell=shell).rstrip() + "\n"


def write_all(folder: Path) -> None:
    """Write the completion script of every shell into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for shell, name in SHELLS.items():
        (folder / name).write_text(render(shell))


if __name__ == "__main__":
    write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "completions"))
