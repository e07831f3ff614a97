"""`lstmkit classify`: numeric sequence classification (UCR text format or CSV, one series per row);
and what every classification task shares: training one split, its metrics and report, loading the model."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from lstmkit.data.labelled_text import stratified_split
from lstmkit.data.sequences import (
    NORMALIZATIONS,
    LabelledSeries,
    class_names,
    read_series,
    sliding_windows,
    z_normalize,
)
from lstmkit.errors import InputError
from lstmkit.models.classifier import (
    POOLINGS,
    ClassificationJob,
    Ensemble,
    Examples,
    SequenceClassifier,
    build_classifier,
    predict_logits,
)
from lstmkit.tasks.common import (
    add_training_arguments,
    number,
    positive_int,
    prepare_out_dir,
    train_config,
    write_report,
)
from lstmkit.train.checkpoint import STATE_FILE, load_model, load_tensors, load_weights
from lstmkit.train.loop import LoopState, TrainConfig, Trainer
from lstmkit.train.metrics import accuracy, per_class_scores

TASK = "classify"
# Measured on ECG200 (train on TRAIN, test on TEST, 10 seeds): see the issue note. 100 series are too few
# to hold some out and stop early on them, so by default the model trains all --epochs on every series.
DEFAULTS = TrainConfig(epochs=200, lr=1e-2, weight_decay=0.05, patience=0)
# ECG200, seeds 0-4: one network 0.84-0.90 test accuracy, the mean of 3 0.85-0.91 (mean 0.882)
MEMBERS = 3

DESCRIPTION = """\
Train an LSTM to tell classes of numeric series apart, then test it.

DATA holds one labelled series per row: the UCR text format (whitespace-separated, the class label
first, e.g. -1 or 1, then the values), or CSV/TSV with a label column anywhere (detected: a column
of text labels, else the whole-number column with the fewest distinct values, else the first; a
header row is detected too). Every series must have the same length.

Each series is z-normalised (--normalize: "series", each by its own mean and deviation, the UCR
convention; "train", by one mean and deviation fitted on the training values; "none") and cut into
overlapping windows of --window values, --stride apart: the LSTM reads one window per step. A
bidirectional LSTM's outputs are pooled over time (--pooling) and a linear layer gives the class;
the model averages the logits of --members such networks, trained one after another from their own
seeds (the first in DIR, member k in DIR/member-k).

With --test FILE the model is tested on FILE; otherwise a stratified --test-fraction is held out.
Training uses every remaining series for --epochs (small sets: a validation split would be too
noisy to stop on); with --val-fraction F a stratified part F is held out instead, training stops
early on its loss and its best weights are kept.

DIR receives model.safetensors, config.json, metrics.json (accuracy, per-class precision, recall,
F1 and support, confusion matrix) and loss_curve.png."""

EXAMPLES = """\
examples:
  lstmkit classify train ECG200_TRAIN.txt --test ECG200_TEST.txt --out ecg
  lstmkit classify train beats.csv --label-column diagnosis --out beats --epochs 50
  lstmkit classify predict ecg ECG200_TEST.txt"""

PREDICT_DESCRIPTION = """\
Classify each series of DATA with the model in DIR (written by 'lstmkit classify train'). Prints one
line per series: its line in DATA, the predicted class and that class's probability. DATA has the
layout of the training file; when its rows also hold the label column, the accuracy is printed last."""


def add_commands(commands) -> None:
    """Register `lstmkit classify train` and `lstmkit classify predict`."""
    classify = commands.add_parser(
        TASK,
        help="classify numeric series (UCR format or CSV) with an LSTM",
        description="Numeric sequence classification: 'train' a model, 'predict' with it.",
    )
    actions = classify.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    train = actions.add_parser(
        "train",
        help="train and test a classifier",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("data", metavar="DATA", type=Path, help="labelled series, one per row")
    train.add_argument("--test", metavar="FILE", type=Path, help="labelled series to test on, as DATA")
    add_table_arguments(train)
    group = train.add_argument_group("data and model")
    group.add_argument(
        "--normalize",
        choices=NORMALIZATIONS,
        default="series",
        help="z-normalise each series by its own mean and deviation, by those of the training values, "
        "or not at all (default: %(default)s)",
    )
    group.add_argument(
        "--window", metavar="N", type=positive_int, default=16, help="values per step (default: 16)"
    )
    group.add_argument(
        "--stride", metavar="N", type=positive_int, default=4, help="values between windows (default: 4)"
    )
    group.add_argument(
        "--test-fraction",
        metavar="F",
        type=fraction,
        default=0.2,
        help="held out to test without --test (default: 0.2)",
    )
    group.add_argument(
        "--val-fraction",
        metavar="F",
        type=fraction,
        default=0.0,
        help="held out to stop early on (default: 0, none)",
    )
    add_model_arguments(
        group, hidden_size=32, layers=1, pooling="mean", dropout=0.2, batch_size=8, members=MEMBERS
    )
    add_training_arguments(train, DEFAULTS)
    train.set_defaults(run=run_train)

    predict = actions.add_parser(
        "predict",
        help="classify series with a trained model",
        description=PREDICT_DESCRIPTION,
        epilog="example:\n  lstmkit classify predict ecg ECG200_TEST.txt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument(
        "model_dir", metavar="DIR", type=Path, help="the --out directory of 'classify train'"
    )
    predict.add_argument("data", metavar="DATA", type=Path, help="series to classify, one per row")
    predict.set_defaults(run=run_predict)


def fraction(text: str) -> float:
    value = number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to below 1, got {text!r}")
    return value


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reading CSV/TSV")
    group.add_argument(
        "--label-column",
        metavar="C",
        help="the label column: a header name or a number from 1 (default: detected)",
    )
    group.add_argument(
        "--delimiter", metavar="D", help="field delimiter, e.g. ',' or '\\t' (default: detected)"
    )


def add_model_arguments(
    group, hidden_size: int, layers: int, pooling: str, dropout: float, batch_size: int, members: int
):
    """The classifier's size and regularisation, with the task's defaults."""
    for flag, kind, default, text in (
        ("--hidden-size", positive_int, hidden_size, "LSTM units per direction"),
        ("--layers", positive_int, layers, "stacked LSTM layers"),
        ("--dropout", fraction, dropout, "dropout rate, from 0 to below 1"),
        ("--batch-size", positive_int, batch_size, "sequences per training step"),
        (
            "--members",
            positive_int,
            members,
            "networks trained one after another, each from its own seed; their logits are averaged "
            "(an ensemble: N times the training time)",
        ),
    ):
        metavar = "P" if kind is fraction else "N"
        group.add_argument(
            flag, metavar=metavar, type=kind, default=default, help=f"{text} (default: %(default)s)"
        )
    group.add_argument(
        "--pooling",
        choices=POOLINGS,
        default=pooling,
        help="how the LSTM's outputs become one vector: "
        + "; ".join(f"{name}: {text}" for name, text in POOLINGS.items())
        + " (default: %(default)s)",
    )


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "hidden_size": args.hidden_size,
        "num_layers": args.layers,
        "pooling": args.pooling,
        "dropout": args.dropout,
        "members": args.members,
    }


def delimiter_option(args: argparse.Namespace) -> str | None:
    return None if args.delimiter is None else args.delimiter.replace("\\t", "\t")


# ---- shared by the classification tasks ------------------------------------------------------------
@dataclass
class Outcome:
    """One trained and tested split."""

    model: SequenceClassifier | Ensemble
    state: LoopState
    predicted: torch.Tensor  # (N_test,) class indices
    record: dict[str, Any]  # what metrics.json holds
    saved: dict[str, Any]  # what config.json holds besides the task


def classification_metrics(predicted: torch.Tensor, actual: torch.Tensor, names: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix (rows: actual class)."""
    counts = torch.zeros(len(names), len(names), dtype=torch.long)
    counts.index_put_((actual, predicted), torch.ones_like(actual), accumulate=True)
    return {
        "accuracy": accuracy(predicted, actual),
        "per_class": per_class_scores(predicted, actual, names),
        "confusion_matrix": {
            "classes": names,
            "rows": "actual",
            "columns": "predicted",
            "counts": counts.tolist(),
        },
        "test_size": len(actual),
    }


def member_jobs(
    options: dict[str, Any], splits: Callable[[int], tuple[Examples, Examples]], batch_size: int, seed: int
) -> list[ClassificationJob]:
    """One job per network of OPTIONS (SequenceClassifier's, with "members"), each built from its own seed,
    member k training and validating on SPLITS(k)."""
    options = dict(options)
    jobs = []
    for k in range(options.pop("members")):
        torch.manual_seed(member_seed(seed, k))
        model = SequenceClassifier(**options)
        jobs.append(ClassificationJob(model, *splits(k), batch_size, member_seed(seed, k)))
    return jobs


def member_seed(seed: int, member: int) -> int:
    """The seed of an ensemble's MEMBER (from 0): the run's own for the first, far from other runs' after."""
    return (seed + member * 1_000_003) % 2**32


def train_and_test(
    task: str,
    jobs: list[ClassificationJob],
    test: Examples,
    config: TrainConfig,
    out_dir: Path,
    saved: dict,
    resume: bool,
) -> Outcome:
    """Train each job's model (the members of an ensemble when more than one, on the same data) one after
    another, the first in OUT_DIR, member k in OUT_DIR/member-k; test the model (their ensemble) on TEST
    and write the report in OUT_DIR, with the first member's training curve."""
    if not len(test.labels):
        raise InputError("the test split is empty; give more examples of each class (or a test fraction > 0)")
    started = time.monotonic()
    states = []
    for k, job in enumerate(jobs):
        member_dir = out_dir / f"member-{k + 1}" if k else out_dir
        trainer = Trainer(
            job, replace(config, seed=member_seed(config.seed, k)), member_dir, unit="sequences"
        )
        done = resume and len(jobs) > 1 and finished_member(trainer)
        states.append(done or trainer.fit(resume and (k == 0 or (member_dir / STATE_FILE).is_file())))
    job = jobs[0]
    model = job.model if len(jobs) == 1 else Ensemble.of([member.model for member in jobs])
    predicted = SequenceClassifier.probabilities(predict_logits(model, test.inputs)).argmax(dim=1)
    metrics = {
        **classification_metrics(predicted, test.labels, saved["class_names"]),
        "train_size": len(job.train.labels),
        "validation_size": 0 if job.val is job.train else len(job.val.labels),  # 0: validated on train
        "validation_loss": statistics.mean(state.best for state in states),  # each member's on its own split
    }
    saved = {"model": model.config, **saved}
    record = write_report(out_dir, task, model, saved, metrics, states[0], config, started, "cross-entropy")
    return Outcome(model, states[0], predicted, record, saved)


def finished_member(trainer: Trainer) -> LoopState | None:
    """For --resume: the loop state of an ensemble member that an earlier run trained to the end, with its
    best weights put in the trainer's model; None when its directory holds no finished training."""
    path = trainer.out_dir / STATE_FILE
    meta = load_tensors(path)[1] if path.is_file() else {}
    if not meta.get("loop", {}).get("stopped"):
        return None
    trainer.load_checkpoint()  # checks that the checkpoint is this run's
    if trainer.best_weights is not None:
        trainer.job.model.load_state_dict(trainer.best_weights)
    return LoopState(**meta["loop"])


def load_classifier(model_dir: Path, task: str) -> tuple[SequenceClassifier | Ensemble, dict[str, Any]]:
    """The trained model in MODEL_DIR (InputError if it holds another task's) and its config."""
    config, tensors = load_model(model_dir, task)
    model = load_weights(build_classifier(config["model"]), tensors, model_dir)
    return model.eval(), config


def print_summary(headline: str, record: dict[str, Any], out_dir: Path) -> None:
    """HEADLINE, the per-class scores of RECORD as a table, and where the files are."""
    print(headline)
    print(f"  {'class':<12} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
    for name, scores in record["per_class"].items():
        print(
            f"  {name:<12} {scores['precision']:>9.3f} {scores['recall']:>7.3f} {scores['f1']:>7.3f} "
            f"{scores['support']:>8}"
        )
    print(f"wrote {out_dir}/: model.safetensors, config.json, metrics.json, loss_curve.png")


# ---- classify ------------------------------------------------------------------------------------
def series_inputs(values: torch.Tensor, saved: dict[str, Any]) -> list[torch.Tensor]:
    """Raw series (N, T) -> the model's inputs, N tensors (S, window)."""
    scaled = z_normalize(values, saved["normalize"], saved["mean"], saved["std"])
    return list(sliding_windows(scaled, saved["window"], saved["stride"]))


def run_train(args: argparse.Namespace) -> None:
    config, delimiter = train_config(args), delimiter_option(args)
    train = read_series(args.data, args.label_column, delimiter)
    names = class_names(train.labels, args.data)
    labels = label_ids(train, names, args.data)
    length = train.values.shape[1]
    if args.window > length:
        raise InputError(
            f"--window {args.window} is longer than the series of {args.data} ({length} values); "
            f"give at most {length}"
        )
    if args.test is None:
        train_index, test_index = stratified_split(labels, args.test_fraction, args.seed)
    else:
        test = read_series(args.test, str(train.label_column + 1), delimiter, train.values.shape[1])
        if test.labels is None:
            raise InputError(
                f"{args.test}: has no label column; --test needs labelled series like {args.data}"
            )
        train_index = list(range(len(labels)))
    fit_index, val_index = train_index, []  # without --val-fraction: validate on the training set
    if args.val_fraction:
        kept, held = stratified_split([labels[i] for i in train_index], args.val_fraction, args.seed)
        fit_index, val_index = [train_index[i] for i in kept], [train_index[i] for i in held]
    fit_values = train.values[fit_index]  # (N_fit, T)
    saved = {
        "class_names": names,
        "length": train.values.shape[1],
        "label_column": train.label_column,
        "normalize": args.normalize,
        "mean": fit_values.mean().item(),
        "std": fit_values.std().item(),
        "window": args.window,
        "stride": args.stride,
    }
    inputs = series_inputs(train.values, saved)

    def examples(index: list[int]) -> Examples:
        return Examples([inputs[i] for i in index], torch.tensor([labels[i] for i in index]))

    if args.test is None:
        test_examples = examples(test_index)
    else:
        test_examples = Examples(
            series_inputs(test.values, saved), torch.tensor(label_ids(test, names, args.test))
        )
    out_dir = prepare_out_dir(args.out)
    fit = examples(fit_index)
    val = examples(val_index) if args.val_fraction else fit
    options = {"num_classes": len(names), "input_size": args.window, **model_options(args)}
    jobs = member_jobs(options, lambda _: (fit, val), args.batch_size, args.seed)
    print(
        f"classify: {len(fit_index)} series of {saved['length']} values to train on, classes "
        f"{', '.join(names)}; testing on {len(test_examples.labels)} "
        f"({args.test if args.test is not None else 'held out'})"
    )
    outcome = train_and_test(TASK, jobs, test_examples, config, out_dir, saved, args.resume)
    record = outcome.record
    print_summary(f"accuracy {record['accuracy']:.4f} on {record['test_size']} test series", record, out_dir)


def label_ids(series: LabelledSeries, names: list[str], path: Path) -> list[int]:
    index = {name: label for label, name in enumerate(names)}
    for label, line in zip(series.labels, series.lines):
        if label not in index:
            raise InputError(
                f"{path}: line {line}: class {label!r} is not one the model knows ({', '.join(names)})"
            )
    return [index[label] for label in series.labels]


def run_predict(args: argparse.Namespace) -> None:
    model, saved = load_classifier(args.model_dir, TASK)
    names = saved["class_names"]
    label_column = None if saved["label_column"] is None else str(saved["label_column"] + 1)
    data = read_series(args.data, label_column, None, saved["length"])
    probabilities = SequenceClassifier.probabilities(predict_logits(model, series_inputs(data.values, saved)))
    confidence, predicted = probabilities.max(dim=1)  # (N,) each
    print("line\tclass\tprobability")
    for line, label, probability in zip(data.lines, predicted.tolist(), confidence.tolist()):
        print(f"{line}\t{names[label]}\t{probability:.4f}")
    if data.labels is not None:
        actual = torch.tensor(label_ids(data, names, args.data))
        print(f"accuracy {accuracy(predicted, actual):.4f} on {len(actual)} series")
