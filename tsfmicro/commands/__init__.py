"""Subcommands of the `tsfmicro` CLI, one module each."""
