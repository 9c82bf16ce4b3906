"""Jobs on a stack directory, one module per family of commands.

Each job reads data and files, calls the core and returns plain results; the command layer only
parses options and prints.
"""
