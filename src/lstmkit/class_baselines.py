"""The classifiers a user would otherwise reach for, fitted on the same training examples as the LSTM and
scored on the same test examples:

- texts: TF-IDF of words and word bigrams (sublinear term frequencies) + logistic regression, its
  regularisation C chosen by 5-fold cross-validation on the training texts (scikit-learn, ``pip install
  'lstmkit[text]'``);
- numeric series: the nearest training series (1-NN) by Euclidean and by DTW distance, and MiniRocket
  (random convolutional kernels + ridge regression; Dempster et al. 2021), all from aeon
  (``pip install 'lstmkit[series]'``).

Otherwise each library's defaults are kept, so a result is the one a user of that library would get.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

TEXT_CS = (0.3, 1.0, 3.0, 10.0, 30.0)  # the regularisation strengths the cross-validation chooses from
TEXT_MISSING = "pip install 'lstmkit[text]' to add the TF-IDF + logistic regression baseline (scikit-learn)"
SERIES_MISSING = "pip install 'lstmkit[series]' to add the 1-NN and MiniRocket baselines (aeon)"
DTW_MAX_CELLS = 2 * 10**8  # training series x length^2: DTW cells per test series above which DTW is skipped


@dataclass
class Baseline:
    name: str  # the key in metrics.json
    title: str  # what the report prints
    model: Any  # fitted; ``predict(X)`` gives class indices
    fit_seconds: float


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def fit_text_baselines(texts: list[str], labels: list[int]) -> tuple[list[Baseline], list[str]]:
    """TF-IDF (words and bigrams, scikit-learn's tokens) + logistic regression with C cross-validated (as
    many folds as the rarest class allows, at most 5), fitted on TEXTS; with the notes of what could not
    run."""
    if not have("sklearn"):
        return [], [TEXT_MISSING]
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.pipeline import make_pipeline

    folds = min(5, min(np.bincount(labels)[np.unique(labels)]))
    classifier = (
        LogisticRegressionCV(Cs=TEXT_CS, cv=folds, scoring="accuracy", max_iter=1000)
        if folds >= 2
        else LogisticRegression(max_iter=1000)
    )
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), classifier)
    return [_fitted("tfidf_logreg", "TF-IDF words+bigrams + logistic regression", model, texts, labels)], []


def fit_series_baselines(values, labels: list[int], seed: int) -> tuple[list[Baseline], list[str]]:
    """1-NN Euclidean, 1-NN DTW (full window) and MiniRocket on VALUES, scaled as the LSTM reads them: an
    array (N, C, T), or a list of (C, L_i) arrays when the lengths differ (DTW alone reads those); with
    the notes of what could not run."""
    if not have("aeon"):
        return [], [SERIES_MISSING]
    from aeon.classification.convolution_based import MiniRocketClassifier
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier

    equal = isinstance(values, np.ndarray)
    count, length = len(values), max(case.shape[-1] for case in values)
    baselines, notes = [], []
    unequal = "the series have different lengths"
    if equal:
        euclidean = KNeighborsTimeSeriesClassifier(distance="euclidean")
        baselines.append(_fitted("1nn_euclidean", "1-NN Euclidean", euclidean, values, labels))
    else:
        notes.append(f"1-NN Euclidean skipped: {unequal}")
    if count * length**2 <= DTW_MAX_CELLS:
        dtw = KNeighborsTimeSeriesClassifier(distance="dtw")
        baselines.append(_fitted("1nn_dtw", "1-NN DTW (full window)", dtw, values, labels))
    else:
        notes.append(
            f"1-NN DTW skipped: {count} training series of {length} values would take "
            f"{count * length**2:.1e} DTW cells per test series"
        )
    if not equal:
        notes.append(f"MiniRocket skipped: {unequal}")
    elif length < 9:
        notes.append(f"MiniRocket skipped: series of {length} values are shorter than its kernels (9)")
    else:
        rocket = MiniRocketClassifier(random_state=seed)
        baselines.append(_fitted("minirocket", "MiniRocket", rocket, values, labels))
    return baselines, notes


def _fitted(name: str, title: str, model, inputs, labels: list[int]) -> Baseline:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(inputs, np.asarray(labels))
    return Baseline(name, title, model, time.perf_counter() - start)


def score_baselines(baselines: list[Baseline], inputs, actual: np.ndarray) -> dict[str, dict[str, Any]]:
    """Each baseline's accuracy on INPUTS with labels ACTUAL (N,), and its fit and predict times."""
    scores = {}
    for baseline in baselines:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted = np.asarray(baseline.model.predict(inputs))
        scores[baseline.name] = {
            "title": baseline.title,
            "accuracy": float(np.mean(predicted == actual)),
            "fit_seconds": round(baseline.fit_seconds, 3),
            "predict_seconds": round(time.perf_counter() - start, 3),
        }
    return scores


def verdict(accuracy: float, baselines: dict[str, dict[str, Any]]) -> str:
    """'lstmkit won: ...' or '<baseline> won: ...', by accuracy against the best baseline."""
    best = max(baselines, key=lambda name: baselines[name]["accuracy"])
    theirs, title = baselines[best]["accuracy"], baselines[best]["title"]
    if accuracy > theirs:
        return f"lstmkit won: accuracy {accuracy:.4f} against {theirs:.4f} for the best baseline ({title})"
    if accuracy == theirs:
        return f"a tie: lstmkit and {title} both have accuracy {accuracy:.4f}"
    return f"{title} won: accuracy {theirs:.4f} against lstmkit's {accuracy:.4f}"
