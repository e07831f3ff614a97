"""The one runner: what every task's command line shares.

``lstmkit TASK train DATA ... --out DIR`` parses the estimator's hyperparameters (its Config's fields) into
its constructor, lets the task fit and evaluate it on DATA (checkpoints in DIR, ``--resume`` from them),
saves the model directory and prints the same closing lines for every task.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from lstmkit.config import add_arguments, from_arguments
from lstmkit.tasks.estimator import Estimator, check_out_dir
from lstmkit.train import distributed

GROUPS = {"data": "data", "model": "model", "training": "training"}


class Outcome(NamedTuple):
    """What a task's train step tells the user, between "Stopped: ..." and "Wrote ...": its scores, and
    the command to run next; the estimator that trained, when the task chose another than the command's
    (the many-series forecaster for a file of many series)."""

    summary: str
    next: str
    estimator: Estimator | None = None


def add_delimiter_option(group) -> None:
    """--delimiter for the tasks that read delimited tables; "\\t" spells a tab."""
    group.add_argument(
        "--delimiter",
        metavar="D",
        type=lambda text: text.replace("\\t", "\t"),
        help="field delimiter, e.g. ',' or '\\t' (default: detected)",
    )


def python_line(estimator: type[Estimator], use: str) -> str:
    """The sentence in a command's --help that names the class behind it."""
    return f"From Python: lstmkit.{estimator.__name__}{use}."


def actions_of(parser: argparse.ArgumentParser):
    """The sub-commands of 'lstmkit TASK': train, predict, sample, eval."""
    return parser.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)


def add_command(
    actions, name: str, estimator: type[Estimator], use: str, run: Callable, texts: tuple[str, str, str]
) -> argparse.ArgumentParser:
    """'TASK NAME DIR ...', a command on a trained model: RUN(args) does it; TEXTS are its one-line help,
    its description and its examples; USE completes the sentence that names the Python behind it
    (".load(DIR).predict(CSV)"). The parser gets DIR; the caller adds the rest."""
    help, description, epilog = texts
    parser = actions.add_parser(
        name,
        help=help,
        description=f"{description}\n\n{python_line(estimator, use)}",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model_dir", type=Path, metavar="DIR", help=f"the --out directory of '{estimator.task} train'"
    )
    parser.set_defaults(run=run)
    return parser


def add_train_command(
    actions, estimator: type[Estimator], train: Callable, texts: tuple[str, str, str]
) -> dict[str, argparse._ArgumentGroup]:
    """'TASK train': the hyperparameters (from the estimator's Config), --out and --resume; TEXTS as for
    ``add_command``. Returns the argument groups ("data", "model", "training"), where the task adds its
    data arguments. TRAIN(estimator, args, out_dir) -> Outcome fits and evaluates."""
    help, description, epilog = texts
    parser = actions.add_parser(
        "train",
        help=help,
        description=f"{description}\n\n{python_line(estimator, '(...).fit(...), .evaluate(), .save(DIR)')}",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    groups = add_arguments(parser, estimator.Config, GROUPS)
    groups["training"].add_argument(
        "--out", metavar="DIR", type=Path, required=True, help="directory for the model and report"
    )
    groups["training"].add_argument(
        "--resume", action="store_true", help="continue from DIR/checkpoint.safetensors"
    )
    parser.set_defaults(run=lambda args: run_train(args, estimator, train))
    return groups


def run_train(args: argparse.Namespace, estimator_class: type[Estimator], train: Callable) -> None:
    estimator = estimator_class(**from_arguments(estimator_class.Config, args).to_config())
    out_dir = check_out_dir(args.out)  # created once the data is known to be good
    outcome = train(estimator, args, out_dir)
    estimator = outcome.estimator or estimator
    written = estimator.save(out_dir) if distributed.is_main() else []
    state = estimator.training_state
    print(f"Stopped: {state.stopped}; the weights of the best validation (step {state.best_step}) are kept.")
    print(outcome.summary)
    print(f"Wrote {out_dir}/: {', '.join(path.name for path in written)}.")
    print(outcome.next)
