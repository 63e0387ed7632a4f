"""The `tsfmicro` command line: one entry point, one subcommand per job.

Each subcommand lives in the module that does the work and exposes
`add_parser(subparsers)`; its handler imports heavy packages only when it runs,
so `tsfmicro --help` stays fast. The library's own subcommands are imported here;
those of the packages above the library (the search service, the dashboard) are
found through the `tsfmicro.commands` entry points (pyproject.toml), as the library
may not import them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

COMMANDS_GROUP = "tsfmicro.commands"
AddParser = Callable[[argparse._SubParsersAction], None]


def _subcommands() -> list[AddParser]:
    """add_parser of every subcommand: the library's, then the entry points' (by name)."""
    from importlib.metadata import entry_points

    from tsfmicro.commands import datasets, model_info, predict, synth, train

    library = [train, model_info, predict, datasets, synth]
    found = sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name)
    return [m.add_parser for m in library] + [e.load() for e in found]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsfmicro",
        description="TSFmicro micro-expression recognition: training, datasets, search.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_parser in _subcommands():
        add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin while waiting make small-tensor training many times slower
    # when cores are shared (e.g. folds in parallel processes); must be set before torch
    # loads. A value the user set wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    from tsfmicro.errors import TsfmicroError

    try:
        return int(args.handler(args) or 0)
    except (TsfmicroError, FileNotFoundError) as exc:
        print(f"tsfmicro {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
