"""The `lstmkit` command line: `lstmkit COMMAND [options]`, one command per registered task (see
lstmkit.tasks.registry), plus `lstmkit build`."""

from __future__ import annotations

import argparse
import ctypes
import os
import sys

from lstmkit import __version__
from lstmkit.errors import InputError, TrainingDiverged
from lstmkit.tasks import registry
from lstmkit.tasks.runner import python_line
from lstmkit.train import distributed

ORDER = [
    "demo",
    "charlm",
    "wordlm",
    "forecast",
    "sentiment",
    "classify",
    "inspect",
    "memory",
]  # in --help; then others


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
    for task in sorted(
        registry.tasks(), key=lambda t: ORDER.index(t.name) if t.name in ORDER else len(ORDER)
    ):
        description = task.description or task.help
        if task.estimator is not None:
            description += f"\n\n{python_line(task.estimator, '')}"
        parser_of_task = commands.add_parser(
            task.name,
            help=task.help,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        task.add_commands(parser_of_task)
    build = commands.add_parser(
        "build",
        help="build the compiled CPU kernel now (else it is built on first use)",
        description="Build the compiled CPU backend ahead of time and say which backends are available.",
    )
    build.set_defaults(run=build_kernel)
    return parser


def build_kernel(args: argparse.Namespace) -> None:
    """`lstmkit build`: compile (or find cached) the CPU kernel, then list the backends."""
    from lstmkit.backend import available
    from lstmkit.backend.cpu import kernel

    print("Building the compiled CPU kernel (10-20 seconds the first time, cached after)...", flush=True)
    module = kernel()
    if module is None:
        print(
            "lstmkit build: the CPU kernel could not be built (see the warning above); 'bptt' serves",
            file=sys.stderr,
        )
        raise SystemExit(1)
    print(f"Built: {module.__file__}\nBackends available, best first: {', '.join(available())}")


def keep_freed_memory() -> None:
    """Have glibc's allocator keep freed blocks (up to 1 GB) for reuse rather than hand them back to the
    system: a training step frees and allocates the same megabytes every step, and pages fresh from the
    system cost a fault per 4 KB (11% of a sentiment training step). The command's own process only: a
    program that imports lstmkit keeps its allocator as it is. Nothing happens off glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    mallopt(m_mmap_threshold, 32 << 20)  # blocks below 32 MB from the heap, not mapped one by one
    mallopt(m_trim_threshold, 1 << 30)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status: 0 done, 1 diverged, 2 bad input, 130 interrupted."""
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    distributed.init()  # under torchrun: join the other processes; otherwise nothing
    try:
        with distributed.quiet_unless_main():
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
    except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        distributed.finish()
    return 0
