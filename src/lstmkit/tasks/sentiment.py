"""`lstmkit sentiment`, `lstmkit.TextClassifier`: text classification with a bidirectional LSTM over words,
tested on a held-out split or by stratified K-fold cross-validation."""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path

import torch

from lstmkit import class_baselines
from lstmkit.config import POSITIVE_INT, Kind, option, with_defaults
from lstmkit.data.labelled_text import (
    QUOTINGS,
    LabelledTexts,
    checked,
    class_names_for,
    read_class_files,
    read_folder,
    read_text_file,
    read_text_table,
    sorted_classes,
    stratified_folds,
    stratified_split,
    text_lines,
)
from lstmkit.data.vocab import WordVocab, tokenize
from lstmkit.errors import InputError
from lstmkit.plots.record import GateRecord
from lstmkit.tasks.classification import (
    FIT_FACTS,
    ClassifierConfig,
    ClassifierEstimator,
    Examples,
    classification_metrics,
    format_label,
    label_ids,
)
from lstmkit.tasks.estimator import METRICS_FILE
from lstmkit.tasks.registry import Task, register
from lstmkit.tasks.runner import Outcome, actions_of, add_command, add_delimiter_option, add_train_command
from lstmkit.train.checkpoint import STATE_FILE, load_tensors
from lstmkit.train.loop import LoopState

TEST_FRACTION = 0.1  # held out to test, without --folds
VAL_FRACTION = 0.1  # of the rest, held out by each member to stop early on and keep the best weights
FOLDS = Kind("a whole number >= 2", True, lambda v: v >= 2)


# The best validation loss comes after 2-3 epochs; after that the networks learn the training texts by
# heart. Networks averaged: on rt-polarity (10 folds) one reaches about 77% accuracy, 4 about 78%, 6 a
# little more.
@with_defaults(epochs=10, lr=2e-3, patience=1, members=6)
class TextClassifierConfig(ClassifierConfig):
    """Word vectors and the vocabulary, next to the classifier's size."""

    min_count: int = option(1, "least count of a kept word", POSITIVE_INT, group="data")
    embed_size: int = option(128, "word vector size", POSITIVE_INT)


def as_texts(
    data, labels=None, text_column=None, label_column=None, delimiter=None, encoding=None, quoting="auto"
) -> LabelledTexts:
    """What the user holds as labelled texts: a list of strings with LABELS; a pandas DataFrame with a
    text and a label column (named, or detected as for a file); a CSV/TSV file or a folder of class
    subfolders; or a dict {class name: file of one text per line}."""
    if isinstance(data, LabelledTexts):
        return data
    if isinstance(data, dict):
        return read_class_files({name: Path(path) for name, path in data.items()}, encoding)
    if isinstance(data, (str, Path)):
        path = Path(data)
        if path.is_dir():
            return read_folder(path, encoding)
        return read_text_table(path, text_column, label_column, delimiter, encoding, quoting)
    if hasattr(data, "columns"):
        text_column = text_column or max(data.columns, key=lambda c: data[c].astype(str).str.len().sum())
        others = [c for c in data.columns if c != text_column]
        label_column = label_column or min(others, key=lambda c: data[c].nunique(), default=None)
        if label_column is None:
            raise InputError("DataFrame: needs a text column and a label column, found one column")
        data, labels = data[text_column].astype(str).tolist(), data[label_column].tolist()
    texts = list(data)
    if not all(isinstance(text, str) for text in texts):
        raise InputError("the texts must be strings: a list of str, a DataFrame column, or a file")
    if labels is None or len(labels) != len(texts):
        raise InputError(
            f"{len(texts)} texts need as many labels, got {'none' if labels is None else len(labels)}"
        )
    names = [label if isinstance(label, str) else format_label(label) for label in labels]
    class_names = sorted_classes(set(names))
    index = {name: k for k, name in enumerate(class_names)}
    return checked(LabelledTexts(texts, [index[name] for name in names], class_names), "the texts")


def fold_baselines(per_fold: list[dict]) -> dict:
    """Each baseline's mean accuracy over the folds (and each fold's), from every fold's "baselines"."""
    merged = {}
    for name, first in per_fold[0].items():
        accuracies = [fold[name]["accuracy"] for fold in per_fold]
        merged[name] = {
            "title": first["title"],
            "accuracy": statistics.mean(accuracies),
            "fold_accuracies": accuracies,
            "fit_seconds": round(sum(fold[name]["fit_seconds"] for fold in per_fold), 3),
            "predict_seconds": round(sum(fold[name]["predict_seconds"] for fold in per_fold), 3),
        }
    return merged


def subset(data: LabelledTexts, index: list[int]) -> LabelledTexts:
    texts, labels = [data.texts[i] for i in index], [data.labels[i] for i in index]
    return LabelledTexts(texts, labels, data.class_names, data.read_as)


class TextClassifier(ClassifierEstimator):
    """Classifies texts (sentiment, or any labels): words -> embedding -> bidirectional LSTM -> dropout ->
    linear -> sigmoid (two classes) or softmax; an ensemble of ``members`` such networks, each holding out
    its own tenth of the training texts to stop early on.

        clf = lstmkit.TextClassifier(members=1).fit(texts, labels)      # or a file, folder, DataFrame
        clf.predict(["a gorgeous, witty film"])                          # class names
        clf.evaluate(test_texts, test_labels)                            # accuracy, per class, confusion
        clf.cross_validate(texts, labels, folds=10)                      # the mean accuracy over folds
    """

    task = "sentiment"
    Config = TextClassifierConfig

    def fit(
        self,
        data,
        labels=None,
        *,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        verbose: bool = True,
        **options,
    ) -> TextClassifier:
        """Train on DATA (see ``as_texts``; reading options text_column=, label_column=, delimiter=,
        encoding=, quoting= go with it): the vocabulary from these texts alone; member k validates on the
        k-th tenth."""
        reading = {
            k: options.pop(k)
            for k in ("text_column", "label_column", "delimiter", "encoding", "quoting")
            if k in options
        }
        self._configure(options, checkpoint_dir, resume)
        cfg = self.config
        data = as_texts(data, labels, **reading)
        self.class_names, self.read_as = data.class_names, data.read_as
        self.vocab = WordVocab.from_texts(data.texts, cfg.min_count)
        self._fit_baselines(data.texts, data.labels)
        held_out = stratified_folds(data.labels, round(1 / VAL_FRACTION), cfg.seed)

        def examples(index: list[int]) -> Examples:
            inputs = [torch.tensor(self.vocab.encode(data.texts[i])) for i in index]
            return Examples(inputs, torch.tensor([data.labels[i] for i in index], dtype=torch.long))

        def split(member: int) -> tuple[Examples, Examples]:
            held = set(held_out[member % len(held_out)])
            kept = [i for i in range(len(data.texts)) if i not in held]
            return examples(kept), examples(sorted(held))

        self._fit_members(split, checkpoint_dir, resume, verbose)
        return self

    def _labelled(self, data, labels=None, **reading):
        """Texts (a str, a list of them, or anything ``as_texts`` reads) -> token ids, the labels' ids
        (None for texts without labels), a name for messages, the texts."""
        if isinstance(data, str) and not Path(data).exists():
            data = [data]
        if isinstance(data, (list, tuple)) and labels is None:
            texts, ids, source = list(data), None, "the texts"
        else:
            read = as_texts(data, labels, **reading)
            names = [read.class_names[k] for k in read.labels]
            texts, ids, source = read.texts, label_ids(names, self.class_names, "the data"), "the data"
        return [torch.tensor(self.vocab.encode(text)) for text in texts], ids, source, texts

    def _make_baselines(self, texts: list[str], ids: list[int]):
        return class_baselines.fit_text_baselines(texts, ids)

    def _network_options(self) -> dict:
        return {"vocab_size": len(self.vocab), "embed_size": self.config.embed_size}

    def cross_validate(
        self,
        data,
        labels=None,
        *,
        folds: int = 10,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        verbose: bool = True,
        **reading,
    ) -> dict:
        """Stratified K-fold cross-validation: each fold trains its own vocabulary and model on the other
        folds and is tested on its own (in CHECKPOINT_DIR/fold-NN when given; ``resume`` skips finished
        folds and members). Returns the mean accuracy over the folds (and its deviation, each fold's, and
        the per-class scores of all folds' test predictions pooled, and each baseline's mean accuracy over
        the same folds); afterwards this estimator holds the model of the fold with the lowest validation
        loss (chosen without looking at any test fold)."""
        self._configure({}, checkpoint_dir, resume)
        data = as_texts(data, labels, **reading)
        folds = FOLDS.check("folds", folds)
        if folds > len(data.labels):
            raise InputError(f"--folds {folds}: more folds than the {len(data.labels)} texts")
        split = stratified_folds(data.labels, folds, self.config.seed)
        fold_models = []
        for number, test_index in enumerate(split, 1):
            fold_dir = None if checkpoint_dir is None else Path(checkpoint_dir) / f"fold-{number:02d}"
            rest = sorted(set(range(len(data.labels))) - set(test_index))
            test = subset(data, test_index)
            if resume and fold_dir is not None and (fold_dir / METRICS_FILE).is_file():
                model = TextClassifier.load(fold_dir)
                model.training_state = LoopState(**load_tensors(fold_dir / STATE_FILE)[1]["loop"])
                train = subset(data, rest)
                model._fit_baselines(train.texts, train.labels)
                model.evaluate(test)
            else:
                model = TextClassifier(**self.config.to_config())
                fold_resume = resume and fold_dir is not None and (fold_dir / STATE_FILE).is_file()
                model.fit(subset(data, rest), checkpoint_dir=fold_dir, resume=fold_resume, verbose=verbose)
                model.evaluate(test)
                if fold_dir is not None:
                    model.save(fold_dir)
                    for member_dir in fold_dir.glob("member-*"):  # a finished fold needs no checkpoints
                        shutil.rmtree(member_dir)
            fold_models.append(model)
            if verbose:
                accuracy = model.metrics["accuracy"]
                print(f"fold {number}/{folds}: accuracy {accuracy:.4f} on {len(test_index)} texts")
        predicted = torch.empty(len(data.labels), dtype=torch.long)
        for test_index, model in zip(split, fold_models):
            predicted[test_index] = model.predicted
        accuracies = [model.metrics["accuracy"] for model in fold_models]
        chosen = min(range(folds), key=lambda k: fold_models[k].metrics["validation_loss"])
        pooled = classification_metrics(predicted, torch.tensor(data.labels), data.class_names)
        best = fold_models[chosen]
        for name in ("network", "training_state", "vocab", "baselines", *FIT_FACTS):  # the chosen fold's
            setattr(self, name, getattr(best, name))
        baselines = fold_baselines([model.metrics["baselines"] for model in fold_models])
        mean = statistics.mean(accuracies)
        self._record(
            {
                **pooled,
                "pooled_accuracy": pooled["accuracy"],
                "accuracy": mean,
                "accuracy_std": statistics.stdev(accuracies),
                "fold_accuracies": accuracies,
                "folds": folds,
                "model_from_fold": chosen + 1,
                "baselines": baselines,
                "baseline_notes": fold_models[0].metrics["baseline_notes"],
                "winner": class_baselines.verdict(mean, baselines) if baselines else None,
            }
        )
        return self.metrics

    @torch.no_grad()
    def gates(self, text: str) -> GateRecord:
        """The gates while the model (its first network) reads TEXT, one step per word or punctuation mark,
        lower-cased as the model reads it; words it does not know are marked."""
        network = self._check_fitted().eval()
        words = tokenize(text)
        if not words:
            raise InputError(f"TEXT {text!r} has no words; give a sentence")
        ids = torch.tensor(self.vocab.encode(text))  # (T,)
        return GateRecord.from_trace(
            network.gate_trace(ids),
            network.config["bidirectional"],
            task=self.task,
            title="text classifier",
            tokens=words,
            token_kind="word",
            summary=self._class_summary(ids),
            unknown=(ids == 1).nonzero().view(-1).tolist(),
        )

    def _reading_state(self) -> dict:
        return {"vocab": self.vocab.words[2:]}

    def _restore_reading(self, state: dict) -> None:
        self.vocab = WordVocab(state["vocab"])


# ---- the command line ----------------------------------------------------------------------------------
DESCRIPTION = """\
Train a text classifier: words -> embedding -> bidirectional stacked LSTM -> dropout -> linear ->
sigmoid (two classes) or softmax (more), then test it.

The data, any number of classes:
  --pos F --neg F    one text per line in each file (blank lines skipped)
  F1 F2 ...          one text per line, one file per class, named by the files' suffixes when
                     their stems agree (rt-polarity.pos, rt-polarity.neg: pos, neg), else by stems
  TABLE              a CSV/TSV file: the text column holds the longest strings, the label column
                     the fewest distinct values; delimiter and header row are detected
                     (--text-column, --label-column, --delimiter override), and so is
                     how quotes are meant: CSV quoting, or text when the file's quotes do
                     not open fields (`"Wow" she said` in a TSV; --quoting overrides)
  FOLDER             one subfolder per class, named as the class, with one text per file
Files are read as UTF-8 unless --encoding says otherwise (rt-polarity needs --encoding cp1252).

Words are lower-cased, with punctuation split off; words seen fewer than --min-count times in the
training texts (never the test texts) become <unk>.

The model is an ensemble of --members such networks, trained one after another, each from its own
seed (initial weights, batch order, dropout) and stopping early on its own validation split: member
k holds out the k-th tenth of the training texts, so that together they learn from all of them. The
model's logits are the members' mean. One network overfits a small data set within a few epochs; the
average of several errs less (--members 1: a single network, N times faster). The first member
trains in DIR (or DIR/fold-NN), member k in its member-k subfolder (removed when a fold is done);
the loss curve is the first's.

Without --folds, a stratified 10% is held out to test on; the rest is for training. With
--folds K, stratified K-fold cross-validation: each fold trains its own vocabulary and model in
DIR/fold-01 ... on the other K-1 folds and tests on its fold; the mean accuracy over the folds is
reported, and DIR keeps the model of the fold with the lowest validation loss (the members' mean;
chosen without looking at any test fold). --minutes and --epochs apply to each member of each
fold; --resume skips the folds and members already done and resumes the interrupted one.

Beside the LSTM, TF-IDF of words and bigrams + logistic regression (scikit-learn, its C chosen by
5-fold cross-validation on the training texts; pip install 'lstmkit[text]') is fitted on the same
training texts and tested on the same texts or folds; the report prints both and says which won
(--no-baselines: the LSTM alone).

DIR receives model.safetensors, config.json (with the vocabulary), metrics.json (accuracy, per-class
precision, recall, F1, support and the confusion matrix; with --folds, "fold_accuracies" too and the
per-class scores of all folds' test predictions pooled; "baselines" and "winner") and
loss_curve.png."""

EXAMPLES = """\
examples:
  lstmkit sentiment train --pos rt-polarity.pos --neg rt-polarity.neg --encoding cp1252 --out mr
  lstmkit sentiment train rt-polarity.pos rt-polarity.neg --encoding cp1252 --folds 10 --out mr10
  lstmkit sentiment train reviews.tsv --text-column review --label-column stars --out stars
  lstmkit sentiment train aclImdb/train --out imdb --minutes 30"""

PREDICT_DESCRIPTION = """\
Classify texts with the model in DIR (written by 'lstmkit sentiment train'). Prints one line per
text: the predicted class, its probability and the text, separated by tabs."""

PREDICT_EXAMPLES = """\
examples:
  lstmkit sentiment predict mr "a gorgeous, witty film" "dull and far too long"
  lstmkit sentiment predict mr --file reviews.txt"""


def read_data(args: argparse.Namespace) -> LabelledTexts:
    """The labelled texts named on the command line (see DESCRIPTION)."""
    if args.pos or args.neg:
        if not (args.pos and args.neg) or args.data:
            raise InputError("give --pos F and --neg F together, and no DATA with them")
        return read_class_files({"neg": args.neg, "pos": args.pos}, args.encoding)
    if not args.data:
        raise InputError(
            "no data: give a CSV/TSV file, a folder, one text file per class, or --pos F --neg F"
        )
    if len(args.data) > 1:
        return read_class_files(dict(sorted(zip(class_names_for(args.data), args.data))), args.encoding)
    return as_texts(
        args.data[0], None, args.text_column, args.label_column, args.delimiter, args.encoding, args.quoting
    )


def train(clf: TextClassifier, args: argparse.Namespace, out_dir: Path) -> Outcome:
    data = read_data(args)
    if args.folds and args.folds > len(data.labels):
        raise InputError(f"--folds {args.folds}: more folds than the {len(data.labels)} texts")
    counts = ", ".join(f"{name} {data.labels.count(label)}" for label, name in enumerate(data.class_names))
    print(f"sentiment: {len(data.texts)} texts, classes {counts}")
    if data.read_as:
        print(f"{args.data[0]}: {data.read_as}")
    following = f"Classify texts with: lstmkit sentiment predict {out_dir} 'a text'"
    if args.folds:
        record = clf.cross_validate(data, folds=args.folds, checkpoint_dir=out_dir, resume=args.resume)
        headline = (
            f"{args.folds}-fold cross-validation: mean accuracy {record['accuracy']:.4f} (standard deviation "
            f"{record['accuracy_std']:.4f}); {out_dir} holds fold {record['model_from_fold']}'s model\n"
            f"all folds' test predictions pooled: accuracy {record['pooled_accuracy']:.4f} on "
            f"{len(data.labels)} texts"
        )
        return Outcome(clf.summary(headline), following)
    rest, test_index = stratified_split(data.labels, TEST_FRACTION, args.seed)
    clf.fit(subset(data, rest), checkpoint_dir=out_dir, resume=args.resume)
    record = clf.evaluate(subset(data, test_index))
    headline = f"accuracy {record['accuracy']:.4f} on {record['test_size']} held-out test texts"
    return Outcome(clf.summary(headline), following)


def predict(args: argparse.Namespace) -> None:
    clf = TextClassifier.load(args.model_dir)
    texts = list(args.texts)
    if args.file is not None:
        texts += [line for line in text_lines(read_text_file(args.file, args.encoding)) if line.strip()]
    if not texts:
        raise InputError("nothing to classify: give TEXT arguments or --file F")
    probabilities = clf.predict_proba(texts)
    for text, row in zip(texts, probabilities):
        print(f"{clf.class_names[row.argmax()]}\t{row.max():.4f}\t{text}")


TRAIN_TEXTS = ("train and test a text classifier", DESCRIPTION, EXAMPLES)
PREDICT_TEXTS = ("classify texts with a trained model", PREDICT_DESCRIPTION, PREDICT_EXAMPLES)
DETECTED_COLUMN = "a header name or a number from 1 (default: detected)"


def add_commands(parser: argparse.ArgumentParser) -> None:
    """`lstmkit sentiment train|predict`."""
    actions = actions_of(parser)
    data = add_train_command(actions, TextClassifier, train, TRAIN_TEXTS)["data"]
    data.add_argument("data", metavar="DATA", type=Path, nargs="*", help="a table, a folder, or class files")
    data.add_argument("--pos", metavar="F", type=Path, help="texts of the class 'pos', one per line")
    data.add_argument("--neg", metavar="F", type=Path, help="texts of the class 'neg', one per line")
    data.add_argument("--encoding", metavar="E", help="text encoding of the files (default: UTF-8)")
    data.add_argument("--text-column", metavar="C", help=DETECTED_COLUMN)
    data.add_argument("--label-column", metavar="C", help=DETECTED_COLUMN)
    add_delimiter_option(data)
    data.add_argument(
        "--quoting",
        choices=QUOTINGS,
        default="auto",
        help="how quotes in a table are read: as CSV quoting, as part of the text (each line one row), or "
        "detected (default: auto, which says which it chose)",
    )
    data.add_argument("--folds", metavar="K", type=FOLDS.parse, help="K-fold cross-validation (K >= 2)")

    p = add_command(actions, "predict", TextClassifier, ".load(DIR).predict(TEXTS)", predict, PREDICT_TEXTS)
    p.add_argument("texts", metavar="TEXT", nargs="*", help="texts to classify")
    p.add_argument("--file", metavar="F", type=Path, help="more texts, one per line")
    p.add_argument("--encoding", metavar="E", help="text encoding of --file (default: UTF-8)")


INSPECT_READS = (
    "the text itself; one step per word or punctuation mark, lower-cased as the model reads it "
    "(words not in its vocabulary are shown greyed; the model reads them as <unk>)"
)


register(
    Task(
        "sentiment",
        "classify texts (sentiment or any labels) with a bidirectional LSTM",
        add_commands,
        TextClassifier,
        "Text classification: 'train' a model, 'predict' with it.",
        reads=INSPECT_READS,
    )
)
