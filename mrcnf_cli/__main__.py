"""Run the command line with ``python -m mrcnf_cli``."""

from mrcnf_cli.app import main

main()
