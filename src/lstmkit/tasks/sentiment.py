"""`lstmkit sentiment`: text classification with a bidirectional LSTM over words, tested on a held-out
split or by stratified K-fold cross-validation."""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import torch

from lstmkit.data.labelled_text import (
    LabelledTexts,
    class_names_for,
    read_class_files,
    read_folder,
    read_text_file,
    read_text_table,
    stratified_folds,
    stratified_split,
    text_lines,
)
from lstmkit.data.vocab import WordVocab
from lstmkit.errors import InputError
from lstmkit.models.classifier import Examples, SequenceClassifier, predict_logits
from lstmkit.tasks.classify import (
    Outcome,
    add_model_arguments,
    classification_metrics,
    delimiter_option,
    load_classifier,
    member_jobs,
    model_options,
    print_summary,
    train_and_test,
)
from lstmkit.tasks.common import (
    METRICS_FILE,
    add_training_arguments,
    positive_int,
    prepare_out_dir,
    train_config,
    write_report,
)
from lstmkit.train.checkpoint import STATE_FILE, load_tensors, read_json
from lstmkit.train.loop import LoopState, TrainConfig

TASK = "sentiment"
TEST_FRACTION = 0.1  # held out to test, without --folds
VAL_FRACTION = 0.1  # of the rest, held out to stop early on and keep the best weights
# the best validation loss comes after 2-3 epochs; after that the networks learn the training texts by heart
DEFAULTS = TrainConfig(epochs=10, lr=2e-3, patience=1)
# networks averaged: on rt-polarity (10 folds) one reaches about 77% accuracy, 4 about 78%, 6 a little more
MEMBERS = 6

DESCRIPTION = """\
Train a text classifier: words -> embedding -> bidirectional stacked LSTM -> dropout -> linear ->
sigmoid (two classes) or softmax (more), then test it.

The data, any number of classes:
  --pos F --neg F    one text per line in each file (blank lines skipped)
  F1 F2 ...          one text per line, one file per class, named by the files' suffixes when
                     their stems agree (rt-polarity.pos, rt-polarity.neg: pos, neg), else by stems
  TABLE              a CSV/TSV file: the text column holds the longest strings, the label column
                     the fewest distinct values; delimiter and header row are detected
                     (--text-column, --label-column, --delimiter override)
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

DIR receives model.safetensors, config.json (with the vocabulary), metrics.json (accuracy, per-class
precision, recall, F1, support and the confusion matrix; with --folds, "fold_accuracies" too and the
per-class scores of all folds' test predictions pooled) and loss_curve.png."""

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


def add_commands(commands) -> None:
    """Register `lstmkit sentiment train` and `lstmkit sentiment predict`."""
    sentiment = commands.add_parser(
        TASK,
        help="classify texts (sentiment or any labels) with a bidirectional LSTM",
        description="Text classification: 'train' a model, 'predict' with it.",
    )
    actions = sentiment.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    train = actions.add_parser(
        "train",
        help="train and test a text classifier",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("data", metavar="DATA", type=Path, nargs="*", help="a table, a folder, or class files")
    reading = train.add_argument_group("reading the data")
    reading.add_argument("--pos", metavar="F", type=Path, help="texts of the class 'pos', one per line")
    reading.add_argument("--neg", metavar="F", type=Path, help="texts of the class 'neg', one per line")
    reading.add_argument("--encoding", metavar="E", help="text encoding of the files (default: UTF-8)")
    reading.add_argument(
        "--text-column", metavar="C", help="a header name or a number from 1 (default: detected)"
    )
    reading.add_argument(
        "--label-column", metavar="C", help="a header name or a number from 1 (default: detected)"
    )
    reading.add_argument(
        "--delimiter", metavar="D", help="field delimiter, e.g. ',' or '\\t' (default: detected)"
    )
    group = train.add_argument_group("evaluation and model")
    group.add_argument("--folds", metavar="K", type=folds_count, help="K-fold cross-validation (K >= 2)")
    group.add_argument(
        "--min-count", type=positive_int, default=1, help="least count of a kept word (default: 1)"
    )
    group.add_argument(
        "--embed-size", metavar="N", type=positive_int, default=128, help="word vector size (default: 128)"
    )
    add_model_arguments(
        group, hidden_size=128, layers=1, pooling="last", dropout=0.5, batch_size=64, members=MEMBERS
    )
    add_training_arguments(train, DEFAULTS)
    train.set_defaults(run=run_train)

    predict = actions.add_parser(
        "predict",
        help="classify texts with a trained model",
        description=PREDICT_DESCRIPTION,
        epilog=PREDICT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument(
        "model_dir", metavar="DIR", type=Path, help="the --out directory of 'sentiment train'"
    )
    predict.add_argument("texts", metavar="TEXT", nargs="*", help="texts to classify")
    predict.add_argument("--file", metavar="F", type=Path, help="more texts, one per line")
    predict.add_argument("--encoding", metavar="E", help="text encoding of --file (default: UTF-8)")
    predict.set_defaults(run=run_predict)


def folds_count(text: str) -> int:
    if not (text.isdigit() and int(text) >= 2):
        raise argparse.ArgumentTypeError(f"must be a whole number >= 2, got {text!r}")
    return int(text)


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
    if args.data[0].is_dir():
        return read_folder(args.data[0], args.encoding)
    columns = args.text_column, args.label_column
    return read_text_table(args.data[0], *columns, delimiter_option(args), args.encoding)


def run_train(args: argparse.Namespace) -> None:
    data = read_data(args)
    if args.folds and args.folds > len(data.labels):
        raise InputError(f"--folds {args.folds}: more folds than the {len(data.labels)} texts")
    counts = ", ".join(f"{name} {data.labels.count(label)}" for label, name in enumerate(data.class_names))
    print(f"sentiment: {len(data.texts)} texts, classes {counts}")
    out_dir = prepare_out_dir(args.out)
    if args.folds:
        run_folds(data, args, out_dir)
    else:
        rest, test_index = stratified_split(data.labels, TEST_FRACTION, args.seed)
        record = train_split(data, rest, test_index, args, out_dir, args.resume).record
        headline = f"accuracy {record['accuracy']:.4f} on {record['test_size']} held-out test texts"
        print_summary(headline, record, out_dir)


def train_split(
    data: LabelledTexts,
    rest: list[int],
    test_index: list[int],
    args: argparse.Namespace,
    out_dir: Path,
    resume: bool,
) -> Outcome:
    """Train on REST, the vocabulary from REST only, each member less its own validation split; test on
    TEST_INDEX. Writes the report in OUT_DIR."""
    held_out = stratified_folds([data.labels[i] for i in rest], round(1 / VAL_FRACTION), args.seed)
    vocab = WordVocab.from_texts([data.texts[i] for i in rest], args.min_count)

    def examples(index: list[int]) -> Examples:
        inputs = [torch.tensor(vocab.encode(data.texts[i])) for i in index]
        return Examples(inputs, torch.tensor([data.labels[i] for i in index], dtype=torch.long))

    options = {"num_classes": len(data.class_names), "vocab_size": len(vocab), "embed_size": args.embed_size}
    options.update(model_options(args))

    def split(member: int) -> tuple[Examples, Examples]:
        held = set(held_out[member % len(held_out)])
        return examples([j for n, j in enumerate(rest) if n not in held]), examples(
            [rest[n] for n in sorted(held)]
        )

    jobs = member_jobs(options, split, args.batch_size, args.seed)
    saved = {"class_names": data.class_names, "vocab": vocab.words[2:], "min_count": args.min_count}
    return train_and_test(TASK, jobs, examples(test_index), train_config(args), out_dir, saved, resume)


def run_folds(data: LabelledTexts, args: argparse.Namespace, out_dir: Path) -> None:
    """K-fold cross-validation; DIR gets the pooled report and the model of the best-validated fold."""
    started = time.monotonic()
    folds = stratified_folds(data.labels, args.folds, args.seed)
    outcomes = []
    for number, test_index in enumerate(folds, 1):
        fold_dir = out_dir / f"fold-{number:02d}"
        rest = sorted(set(range(len(data.labels))) - set(test_index))
        if args.resume and (fold_dir / METRICS_FILE).is_file():
            outcome = finished_fold(fold_dir, data, test_index)
        else:
            resume = args.resume and (fold_dir / STATE_FILE).is_file()  # the first member's
            outcome = train_split(data, rest, test_index, args, fold_dir, resume)
            for member_dir in fold_dir.glob("member-*"):  # their checkpoints: a finished fold needs none
                shutil.rmtree(member_dir)
        outcomes.append(outcome)
        accuracy = outcome.record["accuracy"]
        print(f"fold {number}/{args.folds}: accuracy {accuracy:.4f} on {len(test_index)} texts")
    predicted = torch.empty(len(data.labels), dtype=torch.long)
    for test_index, outcome in zip(folds, outcomes):
        predicted[test_index] = outcome.predicted
    fold_accuracies = [outcome.record["accuracy"] for outcome in outcomes]
    chosen = min(range(len(outcomes)), key=lambda k: outcomes[k].record["validation_loss"])
    pooled = classification_metrics(predicted, torch.tensor(data.labels), data.class_names)
    metrics = {
        **pooled,
        "pooled_accuracy": pooled["accuracy"],
        "accuracy": statistics.mean(fold_accuracies),
        "accuracy_std": statistics.stdev(fold_accuracies),
        "fold_accuracies": fold_accuracies,
        "folds": args.folds,
        "model_from_fold": chosen + 1,
    }
    best = outcomes[chosen]
    record = write_report(
        out_dir,
        TASK,
        best.model,
        best.saved,
        metrics,
        best.state,
        train_config(args),
        started,
        "cross-entropy",
    )
    print(
        f"{args.folds}-fold cross-validation: mean accuracy {record['accuracy']:.4f} "
        f"(standard deviation {record['accuracy_std']:.4f}); {out_dir} holds fold {chosen + 1}'s model"
    )
    pooled_accuracy = record["pooled_accuracy"]
    headline = f"all folds' test predictions pooled: accuracy {pooled_accuracy:.4f} on {len(predicted)} texts"
    print_summary(headline, record, out_dir)


def finished_fold(fold_dir: Path, data: LabelledTexts, test_index: list[int]) -> Outcome:
    """A fold trained by an earlier run (for --resume): its model, loop state and test predictions."""
    model, config = load_classifier(fold_dir, TASK)
    _, meta = load_tensors(fold_dir / STATE_FILE)
    saved = {key: value for key, value in config.items() if key not in ("task", "lstmkit_version")}
    vocab = WordVocab(saved["vocab"])
    logits = predict_logits(model, [torch.tensor(vocab.encode(data.texts[i])) for i in test_index])
    predicted = SequenceClassifier.probabilities(logits).argmax(dim=1)
    return Outcome(model, LoopState(**meta["loop"]), predicted, read_json(fold_dir / METRICS_FILE), saved)


def run_predict(args: argparse.Namespace) -> None:
    model, config = load_classifier(args.model_dir, TASK)
    texts = list(args.texts)
    if args.file is not None:
        texts += [line for line in text_lines(read_text_file(args.file, args.encoding)) if line.strip()]
    if not texts:
        raise InputError("nothing to classify: give TEXT arguments or --file F")
    vocab, names = WordVocab(config["vocab"]), config["class_names"]
    logits = predict_logits(model, [torch.tensor(vocab.encode(text)) for text in texts])
    confidence, predicted = SequenceClassifier.probabilities(logits).max(dim=1)  # (N,) each
    for text, label, probability in zip(texts, predicted.tolist(), confidence.tolist()):
        print(f"{names[label]}\t{probability:.4f}\t{text}")
