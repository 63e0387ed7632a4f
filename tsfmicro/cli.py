"""The `tsfmicro` command line: one entry point, one subcommand per job.

Each subcommand lives in the module that does the work and exposes
`add_parser(subparsers)`; its handler imports heavy packages only when it runs,
so `tsfmicro --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Modules that each define add_parser(subparsers).
_SUBCOMMANDS: list[str] = [
    "tsfmicro.commands.train",
    "tsfmicro.commands.model_info",
    "tsfmicro.commands.predict",
    "search.cli",
    "tsfmicro.commands.datasets",
    "tsfmicro.commands.synth",
    "dashboards.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsfmicro",
        description="TSFmicro micro-expression recognition: training, datasets, search.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in _SUBCOMMANDS:
        importlib.import_module(module_name).add_parser(subparsers)
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
