"""The `lstmkit` command line: `lstmkit COMMAND [options]`. Each task module adds its own commands."""

from __future__ import annotations

import argparse
import sys

from lstmkit import __version__
from lstmkit.errors import InputError, TrainingDiverged
from lstmkit.tasks import charlm, demo

TASKS = [demo, charlm]  # modules with add_commands(commands); each command sets run=function(args)


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2), pointing to --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="lstmkit",
        description="lstmkit: an LSTM built from its gate equations, with tools to train it and look inside.",
        epilog="Run 'lstmkit COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    for task in TASKS:
        task.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status: 0 done, 1 diverged, 2 bad input, 130 interrupted."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except InputError as error:
        print(f"lstmkit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(f"lstmkit {args.command}: stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lstmkit {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
