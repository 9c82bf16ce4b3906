"""Subcommands of the `mrcnf` app: each parses its options, calls the core once, and prints."""
