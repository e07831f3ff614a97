"""Metrics, each a few lines of arithmetic checked in tests against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def accuracy(predicted: Tensor, actual: Tensor) -> float:
    """Fraction of predicted labels equal to the actual ones."""
    return (predicted == actual).float().mean().item()


def per_class_scores(predicted: Tensor, actual: Tensor, names: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class; labels are indices into ``names``.

    precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 P R / (P + R); 0 where undefined.
    """
    scores = {}
    for label, name in enumerate(names):
        tp = int(((predicted == label) & (actual == label)).sum())
        fp = int(((predicted == label) & (actual != label)).sum())
        fn = int(((predicted != label) & (actual == label)).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[name] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return scores


def rmse(predicted: Tensor, actual: Tensor) -> float:
    return math.sqrt(torch.mean((predicted - actual) ** 2).item())


def mae(predicted: Tensor, actual: Tensor) -> float:
    return torch.mean((predicted - actual).abs()).item()


def mase(predicted: Tensor, actual: Tensor, train: Tensor, season: int = 1) -> float:
    """Mean absolute scaled error (Hyndman & Koehler 2006): the MAE divided by the in-sample MAE of the
    seasonal naive forecast y[t] = y[t - season] on the training series."""
    scale = seasonal_scale(train, season)
    return mae(predicted, actual) / scale if scale else math.inf


def seasonal_scale(train, season: int = 1) -> float:
    """The in-sample MAE of the seasonal naive forecast y[t] = y[t - season]: mean |y_t - y_{t-s}|."""
    train = np.asarray(train, dtype=np.float64)
    return float(np.mean(np.abs(train[season:] - train[:-season])))


def smape(predicted, actual) -> float:
    """The M4 competition's symmetric MAPE, in percent: mean of 200 |y - f| / (|y| + |f|)."""
    f, y = np.asarray(predicted, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    return float(np.mean(200 * np.abs(y - f) / (np.abs(y) + np.abs(f))))


def coverage(lo, hi, actual) -> float:
    """The fraction of actual values inside their interval [lo, hi]."""
    y = np.asarray(actual, dtype=np.float64)
    return float(np.mean((np.asarray(lo) <= y) & (y <= np.asarray(hi))))


def msis(lo, hi, actual, train, season: int = 1, alpha: float = 0.05) -> float:
    """The M4 competition's mean scaled interval score of (1 - alpha) intervals [L, U]:

        mean over the forecasts of  (U - L) + (2/alpha)(L - y)[y < L] + (2/alpha)(y - U)[y > U],

    divided by the in-sample seasonal naive MAE of the training series (as MASE is)."""
    lo, hi, y = (np.asarray(v, dtype=np.float64) for v in (lo, hi, actual))
    score = (hi - lo) + (2 / alpha) * ((lo - y) * (y < lo) + (y - hi) * (y > hi))
    scale = seasonal_scale(train, season)
    return float(np.mean(score) / scale) if scale else math.inf


def owa(smape_model: float, mase_model: float, smape_naive2: float, mase_naive2: float) -> float:
    """The M4 competition's overall weighted average: (sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2) / 2,
    each the mean over all series."""
    return (smape_model / smape_naive2 + mase_model / mase_naive2) / 2


def format_loss(nats: float) -> str:
    """A cross-entropy in both units: "1.487 nats/char = 2.145 bits/char" (bits = nats / ln 2)."""
    return f"{nats:.3f} nats/char = {nats / math.log(2):.3f} bits/char"
