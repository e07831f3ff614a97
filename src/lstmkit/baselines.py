"""The baselines a forecaster is compared with, on the same forecast origins."""

from __future__ import annotations

import numpy as np


def naive_forecast(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The last observed value for every step: y_hat[t + k] = y[t]; (O, H)."""
    return np.repeat(values[origins, None], horizon, axis=1)


def seasonal_naive_forecast(values: np.ndarray, origins: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The value one season before: y_hat[t + k] = y[t + k - s * ceil(k / s)]; (O, H)."""
    steps = np.arange(1, horizon + 1)
    lags = season * np.ceil(steps / season).astype(int)
    return values[origins[:, None] + steps - lags]
