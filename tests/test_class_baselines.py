"""The baselines beside the classifiers: the same numbers as scikit-learn and aeon run by hand (and as a
brute-force 1-NN), on the same splits and folds as the LSTM, in metrics.json and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import DATA

import lstmkit
from lstmkit import class_baselines
from lstmkit.cli import main
from lstmkit.data.labelled_text import read_class_files, stratified_folds
from lstmkit.data.sequences import read_series, z_normalize

pytest.importorskip("sklearn")
pytest.importorskip("aeon")

from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegressionCV  # noqa: E402

TEXT_TINY = {"embed_size": 16, "hidden_size": 16, "epochs": 1, "members": 1, "seed": 3}
SERIES_TINY = {"hidden_size": 8, "epochs": 2, "members": 1, "seed": 1}


def reviews():
    return read_class_files(
        {"neg": DATA / "reviews" / "reviews.neg", "pos": DATA / "reviews" / "reviews.pos"}, "cp1252"
    )


def by_hand_tfidf_accuracy(train_texts, train_labels, test_texts, test_labels) -> float:
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    model = LogisticRegressionCV(Cs=[0.3, 1, 3, 10, 30], cv=5, scoring="accuracy", max_iter=1000)
    model.fit(vectorizer.fit_transform(train_texts), train_labels)
    return float(np.mean(model.predict(vectorizer.transform(test_texts)) == np.asarray(test_labels)))


def test_text_baseline_is_scikit_learns_on_the_same_split():
    data = reviews()
    index = np.random.default_rng(0).permutation(len(data.texts))
    train, test = index[:200], index[200:]
    texts, labels = np.asarray(data.texts, dtype=object), np.asarray(data.labels)
    clf = lstmkit.TextClassifier(**TEXT_TINY).fit(list(texts[train]), list(labels[train]), verbose=False)
    record = clf.evaluate(list(texts[test]), list(labels[test]))
    expected = by_hand_tfidf_accuracy(list(texts[train]), labels[train], list(texts[test]), labels[test])
    assert record["baselines"]["tfidf_logreg"]["accuracy"] == pytest.approx(expected)
    assert expected > 0.6  # a real classifier on these 100 test snippets, not a constant guess
    winner = "lstmkit won" if record["accuracy"] > expected else "won"
    assert winner in record["winner"]


def test_cross_validation_scores_the_baseline_on_the_lstms_folds(tmp_path, capsys):
    out = tmp_path / "cv"
    args = [
        "sentiment",
        "train",
        str(DATA / "reviews" / "reviews.pos"),
        str(DATA / "reviews" / "reviews.neg"),
    ]
    tiny = ["--embed-size", "16", "--hidden-size", "16", "--epochs", "1", "--members", "1", "--seed", "3"]
    assert main([*args, "--encoding", "cp1252", "--folds", "3", "--out", str(out), *tiny]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    data = reviews()
    folds = stratified_folds(data.labels, 3, 3)
    expected = []
    for test in folds:
        rest = sorted(set(range(len(data.labels))) - set(test))
        expected.append(
            by_hand_tfidf_accuracy(
                [data.texts[i] for i in rest],
                [data.labels[i] for i in rest],
                [data.texts[i] for i in test],
                [data.labels[i] for i in test],
            )
        )
    baseline = metrics["baselines"]["tfidf_logreg"]
    assert baseline["fold_accuracies"] == pytest.approx(expected)
    assert baseline["accuracy"] == pytest.approx(np.mean(expected))
    printed = capsys.readouterr().out
    assert f"accuracy {np.mean(expected):.4f}" in printed and metrics["winner"] in printed


def brute_force_1nn(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, distance) -> np.ndarray:
    return np.asarray([train_labels[np.argmin([distance(a, b) for a in train])] for b in test])


def dtw(a: np.ndarray, b: np.ndarray) -> float:
    """Squared-difference DTW without a window, the textbook recurrence."""
    cost = np.full((len(a) + 1, len(b) + 1), np.inf)
    cost[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost[i, j] = (a[i - 1] - b[j - 1]) ** 2 + min(cost[i - 1, j], cost[i, j - 1], cost[i - 1, j - 1])
    return cost[-1, -1]


def test_series_baselines_are_the_nearest_neighbours_by_hand():
    train = read_series(DATA / "ucr" / "BEATS_TRAIN.txt")
    test = read_series(DATA / "ucr" / "BEATS_TEST.txt")
    clf = lstmkit.SeriesClassifier(**SERIES_TINY).fit(train.values, train.labels, verbose=False)
    record = clf.evaluate(test.values, test.labels)
    names = clf.class_names
    x_train = z_normalize(train.values, "series").numpy()[:, ::4]  # every 4th value: a quick by-hand DTW
    x_test = z_normalize(test.values, "series").numpy()[:, ::4]
    y_train = np.asarray([names.index(label) for label in train.labels])
    y_test = np.asarray([names.index(label) for label in test.labels])
    full_train, full_test = (
        z_normalize(train.values, "series").numpy(),
        z_normalize(test.values, "series").numpy(),
    )
    euclidean = brute_force_1nn(full_train, y_train, full_test, lambda a, b: np.sum((a - b) ** 2))
    assert record["baselines"]["1nn_euclidean"]["accuracy"] == pytest.approx(np.mean(euclidean == y_test))
    fitted, _ = class_baselines.fit_series_baselines(x_train[:, None], list(y_train), seed=0)
    scores = class_baselines.score_baselines(fitted, x_test[:, None], y_test)
    assert scores["1nn_dtw"]["accuracy"] == pytest.approx(
        np.mean(brute_force_1nn(x_train, y_train, x_test, dtw) == y_test)
    )
    assert record["baselines"]["minirocket"]["accuracy"] > 0.7  # the beats are told apart, not guessed
    assert set(record["baselines"]) == {"1nn_euclidean", "1nn_dtw", "minirocket"}


def test_classify_report_names_the_winner(tmp_path, capsys):
    train, test = DATA / "ucr" / "BEATS_TRAIN.txt", DATA / "ucr" / "BEATS_TEST.txt"
    out = tmp_path / "beats"
    assert (
        main(
            [
                "classify",
                "train",
                str(train),
                "--test",
                str(test),
                "--out",
                str(out),
                "--hidden-size",
                "8",
                "--epochs",
                "2",
                "--members",
                "1",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    best = max(metrics["baselines"].values(), key=lambda scores: scores["accuracy"])
    printed = capsys.readouterr().out
    assert metrics["winner"] in printed and "1-NN Euclidean" in printed
    if metrics["accuracy"] > best["accuracy"]:
        assert metrics["winner"].startswith("lstmkit won")
    elif metrics["accuracy"] < best["accuracy"]:
        assert metrics["winner"].startswith(best["title"])


def test_without_the_library_the_report_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(class_baselines, "have", lambda module: False)
    data = reviews()
    clf = lstmkit.TextClassifier(**TEXT_TINY).fit(data, verbose=False)
    record = clf.evaluate(data)
    assert record["baselines"] == {} and record["winner"] is None
    assert record["baseline_notes"] == [class_baselines.TEXT_MISSING]
    assert "pip install 'lstmkit[text]'" in clf.summary("headline")


def test_no_baselines_switch_and_a_loaded_model_say_nothing_false(tmp_path):
    data = reviews()
    clf = lstmkit.TextClassifier(**TEXT_TINY, baselines=False).fit(data, verbose=False)
    assert clf.evaluate(data)["baselines"] == {} and clf.metrics["baseline_notes"] == []
    clf = lstmkit.TextClassifier(**TEXT_TINY).fit(data, verbose=False)
    clf.save(tmp_path / "m")
    loaded = lstmkit.load(tmp_path / "m")
    record = loaded.evaluate(data)
    assert record["baselines"] == {} and "not saved" in record["baseline_notes"][0]


def test_dtw_is_skipped_with_a_reason_when_it_would_take_too_long():
    values = np.zeros((60, 1, 2000), dtype=np.float32)
    values[30:] += 1
    fitted, notes = class_baselines.fit_series_baselines(values, [0] * 30 + [1] * 30, seed=0)
    assert [b.name for b in fitted] == ["1nn_euclidean", "minirocket"]
    assert notes and notes[0].startswith("1-NN DTW skipped: 60 training series of 2000 values")
