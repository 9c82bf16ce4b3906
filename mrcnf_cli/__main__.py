"""Run the command line with ``python -m mrcnf_cli``, under the program name ``mrcnf``."""

from mrcnf_cli.entry import main

main()
