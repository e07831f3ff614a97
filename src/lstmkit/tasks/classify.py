"""`lstmkit classify`, `lstmkit.SeriesClassifier`: numeric sequence classification (UCR text format, CSV,
.ts, .arff or arrays), a bidirectional LSTM over windows of each series beside a convolutional branch."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstmkit import class_baselines
from lstmkit.config import NATURAL, POSITIVE_INT, RATE, option, with_defaults
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


# Measured on ECG200 (train on TRAIN, test on TEST, seeds 0-4) and on the labelled sets aeon ships
# (docs/classification.md): 100 series are too few to hold some out and stop early on them, so the model
# trains all epochs on every series, the rate annealed to 0 (halving it on the training loss's plateaus
# left ArrowHead at 0.56 against 0.79). The convolutional branch beside the LSTM lifts ArrowHead from 0.50
# to 0.80 and ECG200 from 0.878 to 0.880-0.886; with it, 3 networks (0.884) are no better than one.
@with_defaults(
    epochs=500,
    lr=1e-3,
    weight_decay=0.01,
    patience=0,
    schedule="cosine",
    hidden_size=32,
    pooling="mean",
    dropout=0.2,
    batch_size=16,
    members=1,
)
class SeriesClassifierConfig(ClassifierConfig):
    """How a series becomes the LSTM's steps, and how much of the training set is held out to stop on."""

    normalize: str = option(
        "series",
        "z-normalise each series (each dimension) by its own mean and deviation, by those of the "
        "training values, or not at all",
        choices=NORMALIZATIONS,
        group="data",
    )
    window: int = option(16, "values per step", POSITIVE_INT, group="data")
    stride: int = option(4, "values between windows", POSITIVE_INT, group="data")
    val_fraction: float = option(0.0, "held out to stop early on (0: none)", RATE, metavar="F", group="data")
    conv_filters: int = option(
        64,
        "filters of a convolutional branch (FCN: blocks of F, 2F and F filters) that reads the series at "
        "full resolution beside the LSTM (LSTM-FCN); 0: the LSTM alone",
        NATURAL,
        metavar="F",
    )


@dataclass
class Cases:
    """Labelled series as the classifier reads them."""

    values: torch.Tensor  # (N, C, T) float32; NaN after a case shorter than T
    lengths: torch.Tensor  # (N,) steps of each case
    labels: list | None  # class of each case, or None
    lines: list[int] | None  # the file's line of each case, for messages
    label_column: int | None  # index of a table's label column
    source: str  # a name for messages
    read_as: str = ""  # what the report says of an archive file


def case_lengths(values: torch.Tensor, source: str) -> torch.Tensor:
    """Each case's length (N,) for VALUES (N, C, T): up to its last step with a finite value in any
    dimension (NaN after it pads a shorter case); InputError for a value missing inside a case."""
    present = torch.isfinite(values).any(dim=1)  # (N, T)
    if not present.any(dim=1).all():
        raise InputError(f"{source}: series {int((~present.any(dim=1)).nonzero()[0]) + 1} has no values")
    lengths = values.shape[2] - present.flip(1).float().argmax(dim=1)  # (N,)
    inside = torch.arange(values.shape[2]) < lengths[:, None, None]  # (N, 1, T) broadcast to (N, C, T)
    missing = (inside & ~torch.isfinite(values)).nonzero()
    if len(missing):
        n, c, t = (int(v) + 1 for v in missing[0])
        raise InputError(
            f"{source}: series {n}, dimension {c}, step {t} is not a finite number; fill or drop missing "
            "values (NaN may only pad the end of a shorter series)"
        )
    return lengths


def as_series(
    data, labels, label_column: str | None, delimiter: str | None, length: int | None = None
) -> Cases:
    """What the user holds as Cases: a UCR/CSV/TSV/.ts/.arff file, an array (N, T) or (N, C, T) with
    LABELS (NaN after the end of a shorter series), or a pandas DataFrame with a LABEL_COLUMN (or LABELS).
    With LENGTH (prediction), text such as "0.1,0.5" is one series."""
    if isinstance(data, (str, Path)):
        if length is not None and not Path(data).is_file() and "," in str(data):
            values = torch.tensor([[number_list(str(data))]], dtype=torch.float32)  # (1, 1, T)
            return Cases(
                values, torch.tensor([values.shape[2]]), None, None, None, f"{values.shape[2]} values"
            )
        read = read_series(Path(data), label_column, delimiter, length)
        values = read.values if read.values.ndim == 3 else read.values[:, None]
        return Cases(
            values,
            case_lengths(values, str(data)),
            labels if labels is not None else read.labels,
            read.lines,
            read.label_column,
            str(data),
            read.read_as,
        )
    if hasattr(data, "columns"):  # a DataFrame: one series per row
        if label_column is not None:
            labels, data = data[label_column].tolist(), data.drop(columns=[label_column])
        data = data.to_numpy()
    values = torch.as_tensor(np.asarray(data, dtype=np.float32))
    if values.ndim == 1:
        values = values[None]
    if values.ndim == 2:
        values = values[:, None]  # (N, 1, T)
    if values.ndim != 3 or not values.numel():
        raise InputError("the series must be an array (N, T) or (N, C, T) of numbers, one series per row")
    if labels is not None and len(labels) != len(values):
        raise InputError(f"{len(values)} series but {len(labels)} labels; give one label per series")
    return Cases(values, case_lengths(values, "the array"), labels, None, None, "the array")


class SeriesClassifier(ClassifierEstimator):
    """Tells classes of numeric series apart: each series (each of its dimensions) is z-normalised and cut
    into overlapping windows; a bidirectional LSTM reads one window of every dimension per step and pools
    over time, a convolutional branch (FCN, ``conv_filters``) reads the series at full resolution beside
    it, and a linear layer on both gives the class; with ``members`` > 1 the model averages the logits of
    that many networks.

        clf = lstmkit.SeriesClassifier().fit("ECG200_TRAIN.txt")       # or fit(X (N, T) or (N, C, T), y)
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
        header name or a number from 1, else detected), a .ts or .arff file, or an array (N, T) or
        (N, C, T) with LABELS, or a DataFrame with a LABEL_COLUMN. With val_fraction, a stratified part is
        held out to stop early on."""
        self._configure(training, checkpoint_dir, resume)
        cfg = self.config
        cases = as_series(data, labels, label_column, delimiter)
        self.label_column, source = cases.label_column, cases.source
        if cases.labels is None:
            raise InputError(f"{source}: no labels; give labels= or a label column")
        names = [label if isinstance(label, str) else format_label(label) for label in cases.labels]
        self.class_names = class_names(names, Path(source))
        ids = label_ids(cases.labels, self.class_names, source)
        _, self.channels, self.length = cases.values.shape
        self.equal_length = bool((cases.lengths == self.length).all())
        if cfg.window > self.length:
            raise InputError(
                f"--window {cfg.window} is longer than the series of {source} ({self.length} values); "
                f"give at most {self.length}"
            )
        if cfg.conv_filters and cfg.stride > cfg.window:
            raise InputError(
                f"--stride {cfg.stride} is longer than --window {cfg.window}: the convolutional branch "
                "(--conv-filters) reads every value; give a stride of at most the window"
            )
        fit_index, val_index = list(range(len(ids))), []  # without val_fraction: validate on the training set
        if cfg.val_fraction:
            fit_index, val_index = stratified_split(ids.tolist(), cfg.val_fraction, cfg.seed)
        self.mean, self.std = channel_statistics(cases.values[fit_index])
        scaled = self._scaled(cases.values, cases.lengths)
        inputs = self._windows(scaled)
        self._fit_baselines(self._baseline_view([scaled[i] for i in fit_index]), ids[fit_index].tolist())
        fit = Examples([inputs[i] for i in fit_index], ids[fit_index])
        val = Examples([inputs[i] for i in val_index], ids[val_index]) if cfg.val_fraction else fit
        if verbose:
            shape = f"{self.length} values" if self.equal_length else f"up to {self.length} values"
            if self.channels > 1:
                shape += f" in {self.channels} dimensions"
            print(
                f"classify: {len(fit_index)} series of {shape} to train on, classes "
                f"{', '.join(self.class_names)}"
            )
        self._fit_members(lambda _: (fit, val), checkpoint_dir, resume, verbose)
        return self

    def _scaled(self, values: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """Cases (N, C, T) -> each case's values (C, L_i), scaled as the network reads them."""
        mean, std = torch.tensor(self.mean)[:, None], torch.tensor(self.std)[:, None]  # (C, 1) each
        return [
            z_normalize(case[:, :length], self.config.normalize, mean, std)
            for case, length in zip(values, lengths.tolist())
        ]

    def _windows(self, scaled: list[torch.Tensor]) -> list[torch.Tensor]:
        """Scaled cases, each (C, L_i) -> the network's inputs, each (S_i, C * window): step s reads the
        window at s * stride of every dimension."""
        cfg = self.config
        return [
            sliding_windows(case, cfg.window, cfg.stride)
            .transpose(0, 1)
            .reshape(-1, self.channels * cfg.window)
            for case in scaled
        ]

    def _baseline_view(self, scaled: list[torch.Tensor]):
        """Scaled cases as aeon reads them: an array (N, C, T), or a list of (C, L_i) arrays."""
        arrays = [case.numpy() for case in scaled]
        return np.stack(arrays) if self.equal_length else arrays

    def _make_baselines(self, scaled, ids: list[int]):
        return class_baselines.fit_series_baselines(scaled, ids, self.config.seed)

    def _labelled(self, data, labels=None, label_column: str | None = None, delimiter: str | None = None):
        """DATA in the training layout (label column optional; a file's label column is the training
        file's unless given), or an array (N, T) or (N, C, T): the inputs, the labels' ids or None, a
        name, the scaled cases that the baselines read (None when there are none)."""
        cases = self._read(data, labels, label_column, delimiter)
        ids = (
            None
            if cases.labels is None
            else label_ids(cases.labels, self.class_names, cases.source, cases.lines)
        )
        scaled = self._scaled(cases.values, cases.lengths)
        view = self._baseline_view(scaled) if self.baselines else None  # only the baselines read it
        return self._windows(scaled), ids, cases.source, view

    def _read(
        self, data, labels=None, label_column: str | None = None, delimiter: str | None = None
    ) -> Cases:
        if label_column is None and self.label_column is not None:
            label_column = str(self.label_column + 1)
        cases = as_series(data, labels, label_column, delimiter, self.length)
        _, channels, length = cases.values.shape
        if channels != self.channels:
            raise InputError(
                f"{cases.source}: series of {channels} dimensions; the model reads {self.channels}"
            )
        equal = bool((cases.lengths == length).all())
        if self.equal_length and (length != self.length or not equal):
            found = length if equal else f"{cases.lengths.min()} to {length}"
            raise InputError(f"{cases.source}: series of {found} values; the model reads {self.length}")
        return cases

    def _network_options(self) -> dict:
        cfg = self.config
        conv = {"conv_filters": cfg.conv_filters, "window": cfg.window, "stride": cfg.stride}
        return {"input_size": self.channels * cfg.window, **(conv if cfg.conv_filters else {})}

    @torch.no_grad()
    def gates(self, data, row: int = 1) -> GateRecord:
        """The gates while the model reads one series: DATA a file in the training layout (its ROW-th
        series, from 1), an array of values (T,) or (C, T), or numbers separated by commas ("0.1,0.5")."""
        network = self._check_fitted().eval()
        cfg = self.config
        if isinstance(data, (str, Path)) and Path(data).is_file():
            label_column = None if self.label_column is None else str(self.label_column + 1)
            cases = as_series(Path(data), None, label_column, None, self.length)
            if row > len(cases.values):
                raise InputError(f"--row {row}: {data} holds {len(cases.values)} series")
            case, length = cases.values[row - 1], int(cases.lengths[row - 1])
            source = f"{data}, series {row} (line {cases.lines[row - 1]})"
        else:
            if isinstance(data, str):
                values = torch.tensor([number_list(data)], dtype=torch.float32)
            else:
                values = torch.as_tensor(np.asarray(data, dtype=np.float32))
            case = values.reshape(self.channels, -1) if values.ndim < 2 else values  # (C, T)
            length, source = case.shape[1], f"{case.shape[1]} values"
        case = case[:, :length]
        if case.shape[0] != self.channels:
            raise InputError(f"{source}: {case.shape[0]} dimensions; the model reads {self.channels}")
        inputs = self._windows(self._scaled(case[None], torch.tensor([length])))[0]  # (S, C * window)
        raw = sliding_windows(case[:1], cfg.window, cfg.stride)[0]  # (S, window) of the first dimension
        summary = self._class_summary(inputs)
        if self.equal_length and length != self.length:
            summary += (
                f"; note: the model was trained on series of {self.length} values, this one has {length}"
            )
        shown = f"the last of the {cfg.window} values each step reads"
        if self.channels > 1:
            shown += f" (dimension 1 of {self.channels})"
        return GateRecord.from_trace(
            network.gate_trace(inputs),
            network.config["bidirectional"],
            task=self.task,
            title=f"series classifier: {source}",
            tokens=[f"{v:.4g}" for v in raw[:, -1].tolist()],
            token_kind="value",
            summary=summary,
            notes=[
                f"reads values {start + 1} to {min(start + cfg.window, length)} of the series"
                for start in range(0, len(raw) * cfg.stride, cfg.stride)
            ],
            series=raw[:, -1].tolist(),
            series_name=shown,
        )

    def _reading_state(self) -> dict:
        return {
            "length": self.length,
            "channels": self.channels,
            "equal_length": self.equal_length,
            "label_column": self.label_column,
            "mean": self.mean,
            "std": self.std,
        }

    def _restore_reading(self, state: dict) -> None:
        self.length, self.label_column = state["length"], state["label_column"]
        self.channels, self.equal_length = state.get("channels", 1), state.get("equal_length", True)
        self.mean, self.std = ([v] if isinstance(v, float) else v for v in (state["mean"], state["std"]))


def channel_statistics(values: torch.Tensor) -> tuple[list[float], list[float]]:
    """The mean and (unbiased) deviation of each dimension's values over cases VALUES (N, C, T), NaN
    padding left out; for --normalize train."""
    by_channel = values.transpose(0, 1).reshape(values.shape[1], -1)  # (C, N * T)
    means, stds = [], []
    for row in by_channel:
        row = row[torch.isfinite(row)]
        means.append(row.mean().item())
        stds.append(row.std().item() if len(row) > 1 else 0.0)
    return means, stds


# ---- the command line ----------------------------------------------------------------------------------
DESCRIPTION = """\
Train an LSTM to tell classes of numeric series apart, then test it.

DATA holds one labelled series per row: the UCR text format (whitespace-separated, the class label
first, e.g. -1 or 1, then the values), or CSV/TSV with a label column anywhere (detected: a column
of text labels, else the whole-number column with the fewest distinct values, else the first; a
header row is detected too), every series of the same length. Or the archive's own formats, by
suffix: .ts (header tags, then v1,v2,...:w1,w2,...:label, one dimension per ":" part) and .arff
(numeric attributes, or a relational one for several dimensions, the class last). These may hold
several dimensions, series of different lengths and missing values ("?"): a series ends at its last
value, and missing values inside it are filled by linear interpolation (the report counts them).

Each series (each dimension of it) is z-normalised (--normalize: "series", each by its own mean and
deviation, the UCR convention; "train", by the mean and deviation of each dimension over the
training values; "none") and cut into overlapping windows of --window values, --stride apart: the
LSTM reads one window of every dimension per step. A
bidirectional LSTM's outputs are pooled over time (--pooling); beside it, a convolutional branch
(FCN: three blocks of convolution, batch normalisation and ReLU, --conv-filters F, 2F and F filters;
LSTM-FCN, Karim et al. 2018) reads the series at full resolution and averages its features over
time; a linear layer on both gives the class (--conv-filters 0: the LSTM alone). With --members N
the model averages the logits of N such networks, trained one after another from their own seeds
(the first in DIR, member k in DIR/member-k).

Beside the LSTM, the nearest training series (1-NN, Euclidean and DTW distance) and MiniRocket
(aeon's defaults; pip install 'lstmkit[series]') are fitted on the same training series and tested
on the same series; the report prints them and says which won (--no-baselines: the LSTM alone).

With --test FILE the model is tested on FILE; otherwise a stratified --test-fraction is held out.
Training uses every remaining series for --epochs, the learning rate annealed to 0 (small sets: a
validation split would be too noisy to stop on); with --val-fraction F a stratified part F is held
out instead, training stops early on its loss and its best weights are kept.

DIR receives model.safetensors, config.json, metrics.json (accuracy, per-class precision, recall,
F1 and support, confusion matrix, "baselines" and "winner") and loss_curve.png."""

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
    if data.labels is None:
        raise InputError(f"{args.data}: has no class labels (@classLabel false); give a labelled file")
    if data.read_as:
        print(f"{args.data}: {data.read_as}")
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
    cases = clf._read(args.data)
    probabilities = clf.predict_proba(cases.values)
    print("line\tclass\tprobability")
    for line, row in zip(cases.lines, probabilities):
        print(f"{line}\t{clf.class_names[row.argmax()]}\t{row.max():.4f}")
    if cases.labels is not None:
        actual = label_ids(cases.labels, clf.class_names, cases.source, cases.lines)
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
    "a CSV/TSV, UCR, .ts or .arff file in the training layout (its --row-th series, label column "
    "optional), or numbers separated by commas, e.g. 0.1,0.5,2.3; each step reads a window of the "
    "series (of every dimension) as in training"
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
