"""The `symland` command line.

Each subcommand lives in its own module of this package and exposes
`add_parser(subparsers)` (which sets `func` on its parser) plus whatever it
needs to run. Bad input of any kind ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ._options import SymlandParser

# Subcommand modules, in the order `symland --help` lists them.
COMMANDS = ("toy", "count", "analyze", "valley", "spurious", "mnist", "tensor", "symmetry_breaking",
            "deep_connectivity", "sweep", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = SymlandParser(
        prog="symland",
        description="Symmetry-induced geometry of neural-network loss landscapes.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                       parser_class=SymlandParser)
    for name in COMMANDS:
        importlib.import_module(f"symland.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a refused argument (2, one line already printed)
        return int(exit_.code or 0)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"symland {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
