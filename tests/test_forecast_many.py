"""One LSTM over many series (lstmkit.tasks.forecast_many)."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.errors import InputError
from lstmkit.tasks.forecast import numbers_series
from lstmkit.tasks.forecast_many import fit_global, mase_scale
from lstmkit.train.loop import TrainConfig
from lstmkit.train.metrics import seasonal_scale


def seasonal_series(level: float, steps: int, seed: int) -> np.ndarray:
    """A positive series of LEVEL with a season of 12 and noise, so that last season's change is a poor
    guide of the next."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    return level * (1 + 0.3 * np.sin(2 * np.pi * t / 12) + 0.05 * rng.normal(size=steps))


def fit(values, config, **options):
    """fit_global on whole series, log-encoded and seasonally differenced (season 12, window 24)."""
    series = [numbers_series("y", v) for v in values]
    options = {"window": 24, "log": True, "seasonal_diff": True, "progress": "off", **options}
    return fit_global(series, [len(v) for v in values], 6, 12, config, **options)


def test_one_model_learns_series_of_very_different_levels():
    values = [seasonal_series(level, 260 + 20 * k, k) for k, level in enumerate((5.0, 100.0, 3000.0, 40.0))]
    series = [numbers_series("y", v) for v in values]
    config = TrainConfig(epochs=40, lr=3e-3, patience=0, schedule="constant", seed=0, precision="fp32")
    untrained = fit(values, config.updated(epochs=1, lr=1e-9))
    model = fit(values, config)
    ends = [np.arange(len(v) - 40, len(v) - 6) for v in values]

    def scaled_error(m):  # each series' MAE over its level, so that none dominates
        found = m.forecasts(series, ends)
        return np.mean(
            [
                np.mean(np.abs(f - v[o[:, None] + np.arange(1, 7)])) / v.mean()
                for f, v, o in zip(found, values, ends)
            ]
        )

    assert scaled_error(model) < 0.8 * scaled_error(untrained)  # training beats the start, on every scale
    ends = [np.array([len(v) - 1]) for v in values]
    for k, (one, end, forecast) in enumerate(zip(series, ends, model.forecasts(series, ends))):
        level = (5.0, 100.0, 3000.0, 40.0)[k]
        assert forecast.shape == (1, 6)
        assert 0.5 * level < forecast.mean() < 1.5 * level  # each series in its own units
        bands = model.bands(one, end, forecast)
        (lo95, hi95), (lo80, hi80) = bands[95], bands[80]
        assert (lo95 < lo80).all() and (lo80 < forecast).all() and (forecast < hi80).all()
        assert (hi80 < hi95).all()


def test_a_series_too_short_for_the_window_is_named():
    values = [seasonal_series(10.0, 200, 0), seasonal_series(10.0, 40, 1)]
    config = TrainConfig(epochs=1, seed=0, precision="fp32")
    with pytest.raises(InputError, match="series '2': 40 steps before its test part are too few"):
        fit(values, config)


def test_interval_scale_is_the_mase_scale_up_to_each_origin():
    values = seasonal_series(50.0, 120, 3)
    origins = np.array([20, 47, 119])
    expected = [seasonal_scale(values[: t + 1], 12) for t in origins]
    assert mase_scale(values, origins, 12) == pytest.approx(expected)
    flat = np.r_[np.ones(30), np.arange(10.0)]  # no change within the first 30 steps
    assert mase_scale(flat, np.array([20, 39]), 12)[0] == pytest.approx(
        mase_scale(flat, np.array([39]), 12)[0]
    )
