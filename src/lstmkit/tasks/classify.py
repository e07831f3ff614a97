"""`lstmkit classify`, `lstmkit.SeriesClassifier`: numeric sequence classification (UCR text format, CSV,
or arrays), an ensemble of bidirectional LSTMs over windows of each series."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from lstmkit.config import POSITIVE_INT, RATE, option, with_defaults
from lstmkit.data.labelled_text import stratified_split
from lstmkit.data.sequences import (
    NORMALIZATIONS,
    LabelledSeries,
    class_names,
    number_list,
    read_series,
    sliding_windows,
    z_normalize,
)
from lstmkit.errors import InputError
from lstmkit.plots.record import GateRecord
from lstmkit.tasks.classification import (
    ClassifierConfig,
    ClassifierEstimator,
    Examples,
    format_label,
    label_ids,
)
from lstmkit.tasks.registry import Task, register
from lstmkit.tasks.runner import Outcome, actions_of, add_command, add_delimiter_option, add_train_command
from lstmkit.train.metrics import accuracy


# Measured on ECG200 (train on TRAIN, test on TEST, 10 seeds): 100 series are too few to hold some out and
# stop early on them, so by default the model trains all epochs on every series. One network: 0.84-0.90
# test accuracy over seeds 0-4, the mean of 3: 0.85-0.91 (mean 0.882).
@with_defaults(
    epochs=200,
    lr=1e-2,
    weight_decay=0.05,
    patience=0,
    hidden_size=32,
    pooling="mean",
    dropout=0.2,
    batch_size=8,
    members=3,
)
class SeriesClassifierConfig(ClassifierConfig):
    """How a series becomes the LSTM's steps, and how much of the training set is held out to stop on."""

    normalize: str = option(
        "series",
        "z-normalise each series by its own mean and deviation, by those of the training values, or not "
        "at all",
        choices=NORMALIZATIONS,
        group="data",
    )
    window: int = option(16, "values per step", POSITIVE_INT, group="data")
    stride: int = option(4, "values between windows", POSITIVE_INT, group="data")
    val_fraction: float = option(0.0, "held out to stop early on (0: none)", RATE, metavar="F", group="data")


def as_series(data, labels, label_column: str | None, delimiter: str | None, length: int | None = None):
    """What the user holds as (values (N, T) float32, labels or None, file lines or None, label column
    index or None, a name for messages): a UCR/CSV/TSV file, an array (N, T) with LABELS, or a pandas
    DataFrame with a LABEL_COLUMN (or LABELS)."""
    if isinstance(data, (str, Path)):
        if length is not None and not Path(data).is_file() and "," in str(data):
            values = torch.tensor([number_list(str(data))], dtype=torch.float32)
            return values, None, None, None, f"{len(values[0])} values"
        read = read_series(Path(data), label_column, delimiter, length)
        return (
            read.values,
            labels if labels is not None else read.labels,
            read.lines,
            read.label_column,
            str(data),
        )
    if hasattr(data, "columns"):  # a DataFrame: one series per row
        if label_column is not None:
            labels, data = data[label_column].tolist(), data.drop(columns=[label_column])
        data = data.to_numpy()
    values = torch.as_tensor(np.asarray(data, dtype=np.float32))
    if values.ndim == 1:
        values = values[None]
    if values.ndim != 2 or not torch.isfinite(values).all():
        raise InputError("the series must be an array (N, T) of finite numbers, one series per row")
    if labels is not None and len(labels) != len(values):
        raise InputError(f"{len(values)} series but {len(labels)} labels; give one label per series")
    return values, labels, None, None, "the array"


class SeriesClassifier(ClassifierEstimator):
    """Tells classes of numeric series apart: each series is z-normalised and cut into overlapping
    windows; a bidirectional LSTM reads one window per step, pools over time, and a linear layer gives
    the class; the model averages the logits of ``members`` such networks.

        clf = lstmkit.SeriesClassifier().fit("ECG200_TRAIN.txt")       # or fit(X (N, T), y)
        clf.evaluate("ECG200_TEST.txt")                                  # accuracy, per class, confusion
        clf.predict(X)                                                   # class names
        clf.gates(X[0])                                                  # the gates on one series
    """

    task = "classify"
    Config = SeriesClassifierConfig

    def fit(
        self,
        data,
        labels=None,
        *,
        label_column: str | None = None,
        delimiter: str | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        verbose: bool = True,
        **training,
    ) -> SeriesClassifier:
        """Train on DATA: a UCR text file or CSV/TSV with one labelled series per row (LABEL_COLUMN, a
        header name or a number from 1, else detected), or an array (N, T) with LABELS, or a DataFrame
        with a LABEL_COLUMN. With val_fraction, a stratified part is held out to stop early on."""
        self._configure(training, checkpoint_dir, resume)
        cfg = self.config
        values, labels, _, self.label_column, source = as_series(data, labels, label_column, delimiter)
        if labels is None:
            raise InputError(f"{source}: no labels; give labels= or a label column")
        names = [label if isinstance(label, str) else format_label(label) for label in labels]
        self.class_names = class_names(names, Path(source))
        ids = label_ids(labels, self.class_names, source)
        self.length = values.shape[1]
        if cfg.window > self.length:
            raise InputError(
                f"--window {cfg.window} is longer than the series of {source} ({self.length} values); "
                f"give at most {self.length}"
            )
        fit_index, val_index = list(range(len(ids))), []  # without val_fraction: validate on the training set
        if cfg.val_fraction:
            fit_index, val_index = stratified_split(ids.tolist(), cfg.val_fraction, cfg.seed)
        fit_values = values[fit_index]  # (N_fit, T)
        self.mean, self.std = fit_values.mean().item(), fit_values.std().item()
        inputs = self._inputs(values)
        fit = Examples([inputs[i] for i in fit_index], ids[fit_index])
        val = Examples([inputs[i] for i in val_index], ids[val_index]) if cfg.val_fraction else fit
        if verbose:
            print(
                f"classify: {len(fit_index)} series of {self.length} values to train on, classes "
                f"{', '.join(self.class_names)}"
            )
        self._fit_members(lambda _: (fit, val), checkpoint_dir, resume, verbose)
        return self

    def _inputs(self, values: torch.Tensor) -> list[torch.Tensor]:
        """Raw series (N, T) -> the network's inputs, N tensors (S, window)."""
        cfg = self.config
        scaled = z_normalize(values, cfg.normalize, self.mean, self.std)
        return list(sliding_windows(scaled, cfg.window, cfg.stride))

    def _labelled(self, data, labels=None, label_column: str | None = None, delimiter: str | None = None):
        """DATA in the training layout (label column optional; a file's label column is the training
        file's unless given), or an array (N, T): the inputs, the labels' ids or None, a name."""
        values, labels, lines, source = self._read(data, labels, label_column, delimiter)
        ids = None if labels is None else label_ids(labels, self.class_names, source, lines)
        return self._inputs(values), ids, source

    def _read(self, data, labels=None, label_column: str | None = None, delimiter: str | None = None):
        if label_column is None and self.label_column is not None:
            label_column = str(self.label_column + 1)
        values, labels, lines, _, source = as_series(data, labels, label_column, delimiter, self.length)
        if values.shape[1] != self.length:
            raise InputError(f"{source}: series of {values.shape[1]} values; the model reads {self.length}")
        return values, labels, lines, source

    def _network_options(self) -> dict:
        return {"input_size": self.config.window}

    @torch.no_grad()
    def gates(self, data, row: int = 1) -> GateRecord:
        """The gates while the model reads one series: DATA a file in the training layout (its ROW-th
        series, from 1), an array of values, or numbers separated by commas ("0.1,0.5,2.3")."""
        network = self._check_fitted().eval()
        cfg = self.config
        if isinstance(data, (str, Path)) and Path(data).is_file():
            label_column = None if self.label_column is None else str(self.label_column + 1)
            read = read_series(Path(data), label_column, None, self.length)
            if row > len(read.lines):
                raise InputError(f"--row {row}: {data} holds {len(read.lines)} series")
            values, source = read.values[row - 1], f"{data}, series {row} (line {read.lines[row - 1]})"
        elif isinstance(data, str):
            values = torch.tensor(number_list(data), dtype=torch.float32)
            source = f"{len(values)} values"
        else:
            values, source = (
                torch.as_tensor(np.asarray(data, dtype=np.float32)).view(-1),
                f"{np.size(data)} values",
            )
        inputs = self._inputs(values[None])[0]  # (S, window), scaled as in training
        raw = sliding_windows(values[None], cfg.window, cfg.stride)[0]  # (S, window)
        summary = self._class_summary(inputs)
        if len(values) != self.length:
            summary += (
                f"; note: the model was trained on series of {self.length} values, this one has {len(values)}"
            )
        return GateRecord.from_trace(
            network.gate_trace(inputs),
            network.config["bidirectional"],
            task=self.task,
            title=f"series classifier: {source}",
            tokens=[f"{v:.4g}" for v in raw[:, -1].tolist()],
            token_kind="value",
            summary=summary,
            notes=[
                f"reads values {start + 1} to {min(start + cfg.window, len(values))} of the series"
                for start in range(0, len(raw) * cfg.stride, cfg.stride)
            ],
            series=raw[:, -1].tolist(),
            series_name=f"the last of the {cfg.window} values each step reads",
        )

    def _reading_state(self) -> dict:
        return {"length": self.length, "label_column": self.label_column, "mean": self.mean, "std": self.std}

    def _restore_reading(self, state: dict) -> None:
        self.length, self.label_column = state["length"], state["label_column"]
        self.mean, self.std = state["mean"], state["std"]


# ---- the command line ----------------------------------------------------------------------------------
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


def train(clf: SeriesClassifier, args: argparse.Namespace, out_dir: Path) -> Outcome:
    data: LabelledSeries = read_series(args.data, args.label_column, args.delimiter)
    names = class_names(data.labels, args.data)
    ids = label_ids(data.labels, names, str(args.data), data.lines).tolist()
    if args.test is None:
        kept, held = stratified_split(ids, args.test_fraction, args.seed)
        train_values, train_labels = data.values[kept], [data.labels[i] for i in kept]
        test, tested_on = (data.values[held], [data.labels[i] for i in held]), "held out"
    else:
        train_values, train_labels = data.values, data.labels
        test, tested_on = (args.test,), str(args.test)
    clf.fit(train_values, train_labels, checkpoint_dir=out_dir, resume=args.resume)
    clf.label_column = data.label_column  # the file's layout, for 'classify predict' and 'inspect'
    record = clf.evaluate(*test, delimiter=args.delimiter)
    headline = f"accuracy {record['accuracy']:.4f} on {record['test_size']} test series ({tested_on})"
    return Outcome(clf.summary(headline), f"Classify more with: lstmkit classify predict {out_dir} DATA")


def predict(args: argparse.Namespace) -> None:
    clf = SeriesClassifier.load(args.model_dir)
    values, labels, lines, source = clf._read(args.data)
    probabilities = clf.predict_proba(values)
    print("line\tclass\tprobability")
    for line, row in zip(lines, probabilities):
        print(f"{line}\t{clf.class_names[row.argmax()]}\t{row.max():.4f}")
    if labels is not None:
        actual = label_ids(labels, clf.class_names, source, lines)
        predicted = torch.from_numpy(probabilities.argmax(axis=1))
        print(f"accuracy {accuracy(predicted, actual):.4f} on {len(actual)} series")


TRAIN_TEXTS = ("train and test a classifier", DESCRIPTION, EXAMPLES)
PREDICT_TEXTS = (
    "classify series with a trained model",
    PREDICT_DESCRIPTION,
    "example:\n  lstmkit classify predict ecg ECG200_TEST.txt",
)


def add_commands(parser: argparse.ArgumentParser) -> None:
    """`lstmkit classify train|predict`."""
    actions = actions_of(parser)
    data = add_train_command(actions, SeriesClassifier, train, TRAIN_TEXTS)["data"]
    data.add_argument("data", metavar="DATA", type=Path, help="labelled series, one per row")
    data.add_argument("--test", metavar="FILE", type=Path, help="labelled series to test on, as DATA")
    data.add_argument(
        "--test-fraction",
        metavar="F",
        type=RATE.parse,
        default=0.2,
        help="held out to test without --test (default: 0.2)",
    )
    data.add_argument(
        "--label-column",
        metavar="C",
        help="the label column: a header name or a number from 1 (default: detected)",
    )
    add_delimiter_option(data)

    p = add_command(actions, "predict", SeriesClassifier, ".load(DIR).predict(DATA)", predict, PREDICT_TEXTS)
    p.add_argument("data", metavar="DATA", type=Path, help="series to classify, one per row")


INSPECT_READS = (
    "a CSV/TSV or UCR file in the training layout (its --row-th series, label column optional), "
    "or numbers separated by commas, e.g. 0.1,0.5,2.3; each step reads a window of the series "
    "as in training"
)


register(
    Task(
        "classify",
        "classify numeric series (UCR format or CSV) with an LSTM",
        add_commands,
        SeriesClassifier,
        "Numeric sequence classification: 'train' a model, 'predict' with it.",
        reads=INSPECT_READS,
    )
)
