"""Metrics against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from lstmkit.train.metrics import accuracy, mae, mase, per_class_scores, rmse


def test_classification_metrics_by_hand():
    predicted = torch.tensor([0, 0, 1, 1, 2, 0])
    actual = torch.tensor([0, 1, 1, 1, 2, 2])
    assert accuracy(predicted, actual) == pytest.approx(4 / 6)
    scores = per_class_scores(predicted, actual, ["a", "b", "c"])
    # a: TP 1, FP 2, FN 0; b: TP 2, FP 0, FN 1; c: TP 1, FP 0, FN 1
    assert scores["a"] == pytest.approx({"precision": 1 / 3, "recall": 1.0, "f1": 0.5, "support": 1})
    assert scores["b"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert scores["c"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})


def test_regression_metrics_by_hand():
    predicted, actual = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([2.0, 2.0, 1.0])
    assert rmse(predicted, actual) == pytest.approx(math.sqrt((1 + 0 + 9) / 3))
    assert mae(predicted, actual) == pytest.approx(4 / 3)
    train = torch.tensor([1.0, 3.0, 2.0, 6.0])  # seasonal naive errors, season 2: |2-1|, |6-3| -> 2
    assert mase(predicted, actual, train, season=2) == pytest.approx((4 / 3) / 2)
    assert mase(predicted, actual, train) == pytest.approx((4 / 3) / ((2 + 1 + 4) / 3))
