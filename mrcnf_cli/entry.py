"""The `mrcnf` program's entry point: import the application, then run it.

Importing torch takes seconds. A Ctrl-C in that time exits with code 130 and one line, like a
Ctrl-C later on, instead of a traceback from the middle of an import.
"""

from __future__ import annotations

import sys

from mrcnf_cli.errors import EXIT_INTERRUPTED


def main() -> None:
    """Run the command line as ``mrcnf``."""
    try:
        from mrcnf_cli.app import app
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    app(prog_name="mrcnf")
