"""The `lstmkit` command line: `lstmkit COMMAND [options]`."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from lstmkit import __version__
from lstmkit.errors import InputError
from lstmkit.tasks.demo import run_demo

DEMO_DESCRIPTION = """\
Train a small character-level LSTM on the bundled tinyshakespeare text for about a minute, then
show what it learned:

  - the validation loss (nats and bits per character) and a text sample, before and after training;
  - a table of the last layer's forget and input gates at each character of the sentence
    "Bob is a nice person. Dan, on the other hand, is evil.", with the full stop marked;
  - DIR/samples.txt (both samples) and DIR/trace.json (every gate and state value per character).

Training stops when the time budget is spent, so a faster machine trains more steps."""

DEMO_EXAMPLES = """\
examples:
  lstmkit demo                          about a minute, results in ./lstmkit-demo
  lstmkit demo --seconds 600 --out run  ten minutes: lower loss, better samples"""


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2), pointing to --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def positive_seconds(text: str) -> float:
    """argparse type for --seconds: a finite number greater than 0."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return seconds


def seed_value(text: str) -> int:
    """argparse type for --seed: a whole number in [0, 2**32)."""
    if not (text.isdigit() and int(text) < 2**32):
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {2**32 - 1}, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="lstmkit",
        description="lstmkit: an LSTM built from its gate equations, with tools to train it and look inside.",
        epilog="Run 'lstmkit COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="train a small character model for a minute and show its gates at work",
        description=DEMO_DESCRIPTION,
        epilog=DEMO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=Path("lstmkit-demo"),
        help="directory for samples.txt and trace.json, created if missing; earlier files there are replaced "
        "(default: ./lstmkit-demo)",
    )
    demo.add_argument(
        "--seconds",
        metavar="S",
        type=positive_seconds,
        default=60.0,
        help="training time budget in seconds (default: 60)",
    )
    demo.add_argument(
        "--seed",
        metavar="N",
        type=seed_value,
        default=0,
        help="seed for the initial weights and the samples (default: 0)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 done, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            run_demo(args.out, args.seconds, args.seed)
    except InputError as error:
        print(f"lstmkit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lstmkit {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
