"""The classification tasks against the classifiers a user would otherwise use, on the same splits.

    python benchmarks/bench_classify.py                      # baselines only: rt-polarity, ECG200 (seconds)
    python benchmarks/bench_classify.py --lstm               # and the LSTM (the commands' defaults, ~15 min)
    python benchmarks/bench_classify.py --lstm --seeds 0,1,2,3,4
    python benchmarks/bench_classify.py --archive DIR        # every NAME_TRAIN.ts + NAME_TEST.ts under DIR
    python benchmarks/bench_classify.py --lstm --only ecg200 --set conv_filters=0   # other settings

rt-polarity: stratified 10-fold cross-validation on the folds `lstmkit sentiment train --folds 10` uses
(seed 0); TF-IDF of words and bigrams + logistic regression (scikit-learn) on each fold, as the command
reports it. ECG200: train on TRAIN, test on TEST; 1-NN Euclidean, 1-NN DTW and MiniRocket (aeon) on the
z-normalised series, MiniRocket once per seed. With --lstm, the same estimators train the LSTM and report
both (TextClassifier.cross_validate; SeriesClassifier.fit + evaluate per seed).

--archive DIR runs `lstmkit classify train NAME_TRAIN.ts --test NAME_TEST.ts` with the defaults (seed 0)
on every such pair under DIR (aeon ships a few in aeon/datasets/data) and prints the LSTM's test accuracy
beside the baselines' from the same run: whether the defaults, tuned on no data set but ECG200, hold up.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import machine

import lstmkit
from lstmkit import class_baselines
from lstmkit.data.labelled_text import read_class_files, stratified_folds
from lstmkit.data.sequences import read_series, z_normalize
from lstmkit.errors import InputError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def rt_polarity(lstm: bool) -> None:
    folder = DATA / "rt-polarity"
    files = {"neg": folder / "rt-polarity.neg", "pos": folder / "rt-polarity.pos"}
    data = read_class_files(files, "cp1252")
    print(f"\nrt-polarity: {len(data.texts)} texts, 10 stratified folds (seed 0)")
    if lstm:
        start = time.perf_counter()
        record = lstmkit.TextClassifier(seed=0).cross_validate(data, folds=10, verbose=False)
        minutes = (time.perf_counter() - start) / 60
        baseline = record["baselines"]["tfidf_logreg"]
        print(f"  lstmkit (defaults)             mean accuracy {record['accuracy']:.4f}  ({minutes:.1f} min)")
        print(f"  {baseline['title']:<30} mean accuracy {baseline['accuracy']:.4f}")
        print(f"  {record['winner']}")
        return
    accuracies, seconds = [], 0.0
    for test in stratified_folds(data.labels, 10, 0):
        held = set(test)
        rest = [i for i in range(len(data.texts)) if i not in held]
        fitted, _ = class_baselines.fit_text_baselines(
            [data.texts[i] for i in rest], [data.labels[i] for i in rest]
        )
        scores = class_baselines.score_baselines(
            fitted, [data.texts[i] for i in test], [data.labels[i] for i in test]
        )["tfidf_logreg"]
        accuracies.append(scores["accuracy"])
        seconds += scores["fit_seconds"] + scores["predict_seconds"]
    folds = " ".join(f"{a:.4f}" for a in accuracies)
    mean = statistics.mean(accuracies)
    print(f"  TF-IDF + logistic regression  mean accuracy {mean:.4f} ({folds}), {seconds:.1f} s")


def ecg200(lstm: bool, seeds: list[int], options: dict) -> None:
    train = read_series(DATA / "ucr-ecg200" / "ECG200_TRAIN.txt")
    test = read_series(DATA / "ucr-ecg200" / "ECG200_TEST.txt")
    print(f"\nECG200: train {len(train.lines)}, test {len(test.lines)}, seeds {seeds}")
    names = sorted(set(train.labels), key=float)
    ids = [names.index(label) for label in train.labels]
    actual = [names.index(label) for label in test.labels]
    by_name: dict[str, list[float]] = {}
    lstm_accuracies = []
    for seed in seeds:
        if lstm:
            clf = lstmkit.SeriesClassifier(seed=seed, **options).fit(
                train.values, train.labels, verbose=False
            )
            record = clf.evaluate(test.values, test.labels)
            lstm_accuracies.append(record["accuracy"])
            scores = record["baselines"]
        else:
            x_train = z_normalize(train.values, "series")[:, None].numpy()
            x_test = z_normalize(test.values, "series")[:, None].numpy()
            fitted, _ = class_baselines.fit_series_baselines(x_train, ids, seed)
            scores = class_baselines.score_baselines(fitted, x_test, actual)
        for score in scores.values():
            by_name.setdefault(score["title"], []).append(score["accuracy"])
    if lstm:
        each = ", ".join(f"{a:.2f}" for a in lstm_accuracies)
        print(f"  {'lstmkit (defaults)':<24} {statistics.mean(lstm_accuracies):.4f}  ({each})")
    for title, accuracies in by_name.items():
        print(
            f"  {title:<24} {statistics.mean(accuracies):.4f}  ({', '.join(f'{a:.2f}' for a in accuracies)})"
        )
    if lstm:
        best = max(by_name, key=lambda title: statistics.mean(by_name[title]))
        ours, theirs = statistics.mean(lstm_accuracies), statistics.mean(by_name[best])
        winner = "lstmkit" if ours > theirs else best
        print(f"  {winner} won on the mean: {max(ours, theirs):.4f} against {min(ours, theirs):.4f}")


def archive(folder: Path, options: dict) -> None:
    pairs = sorted(path for path in folder.rglob("*_TRAIN.ts") if not path.stem.endswith("_eq_TRAIN"))
    print(f"\n{'data set':<24} {'train':>5} {'test':>5} {'dims':>4} {'length':>9}  lstmkit  baselines")
    for train in pairs:
        test = train.with_name(train.name.replace("_TRAIN", "_TEST"))
        if not test.is_file():
            continue
        start = time.perf_counter()
        name = train.stem.removesuffix("_TRAIN")
        try:
            clf = lstmkit.SeriesClassifier(seed=0, **options).fit(train, verbose=False)
        except InputError as error:  # not a classification set (a regression one, time stamps)
            print(f"{name:<24} skipped: {str(error).split(': ', 1)[1]}")
            continue
        record = clf.evaluate(test)
        seconds = time.perf_counter() - start
        span = f"{clf.length}" if clf.equal_length else f"<= {clf.length}"
        others = "  ".join(f"{b['title']} {b['accuracy']:.3f}" for b in record["baselines"].values())
        print(
            f"{name:<24} {record['train_size']:>5} {record['test_size']:>5} {clf.channels:>4} {span:>9}  "
            f"{record['accuracy']:.3f}    {others}  ({seconds:.0f} s)",
            flush=True,
        )


def hyperparameter(item: str) -> tuple[str, int | float | str]:
    """ "name=value" -> (name, the value as an int, a float or the text)."""
    name, _, text = item.partition("=")
    for kind in (int, float):
        try:
            return name, kind(text)
        except ValueError:
            pass
    return name, text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lstm", action="store_true", help="train the LSTM too (minutes)")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="ECG200 seeds, comma-separated")
    parser.add_argument("--only", choices=("rt-polarity", "ecg200"), help="one data set")
    parser.add_argument("--archive", type=Path, metavar="DIR", help="the .ts pairs under DIR instead")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="SeriesClassifier hyperparameters other than the defaults, e.g. --set conv_filters=0",
    )
    args = parser.parse_args()
    options = dict(hyperparameter(item) for item in args.set)
    print(machine.describe())
    if options:
        print(f"series classifier: {options}")
    if args.archive:
        archive(args.archive, options)
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.only != "ecg200":
        rt_polarity(args.lstm)
    if args.only != "rt-polarity":
        ecg200(args.lstm, seeds, options)


if __name__ == "__main__":
    main()
