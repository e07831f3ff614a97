"""The statistical forecasters a forecaster would otherwise use, from statsforecast (``pip install
'lstmkit[stats]'``): AutoETS, AutoTheta and AutoARIMA, on the same forecast origins as the LSTM.

Each model is fitted once on the first ``n_fit`` steps; at every origin t it forecasts y_{t+1..t+H} from
y_1..y_t with the fitted parameters (statsforecast's ``forward``), as
``StatsForecast.cross_validation(refit=False, step_size=1)`` does.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from dataclasses import dataclass

import numpy as np

STAT_METHODS = ("AutoETS", "AutoTheta", "AutoARIMA")
LEVELS = (80, 95)
ARIMA_MAX_STEPS = 1200  # AutoARIMA's search takes seconds to minutes beyond this; it is skipped, saying so
ARIMA_MAX_SEASON = 52  # a seasonal ARIMA of season 365 is out of reach
MISSING = "pip install 'lstmkit[stats]' to add AutoETS, AutoTheta and AutoARIMA (statsforecast)"


@dataclass
class BaselineForecast:
    point: np.ndarray  # (O, H)
    intervals: dict[int, tuple[np.ndarray, np.ndarray]]  # level -> (lo, hi), each (O, H)
    seconds: float  # fit and forecasts


def have_statsforecast() -> bool:
    return importlib.util.find_spec("statsforecast") is not None


def skip_reason(method: str, n_fit: int, season: int) -> str | None:
    """Why METHOD is not run on a series of N_FIT steps with SEASON, or None."""
    if n_fit < max(2 * season, 8) + 2:
        return f"{method} skipped: {n_fit} steps are too few to fit it (season {season})"
    if method == "AutoARIMA" and n_fit > ARIMA_MAX_STEPS:
        return f"AutoARIMA skipped: {n_fit} steps is a long series (its search takes minutes there)"
    if method == "AutoARIMA" and season > ARIMA_MAX_SEASON:
        return f"AutoARIMA skipped: season {season} is too long for a seasonal ARIMA"
    return None


def make_model(method: str, season: int):
    from statsforecast import models

    return getattr(models, method)(season_length=season)


def statistical_forecasts(
    values: np.ndarray,
    n_fit: int,
    origins: np.ndarray,
    horizon: int,
    season: int,
    methods: tuple[str, ...] = STAT_METHODS,
    levels: tuple[int, ...] = LEVELS,
) -> tuple[dict[str, BaselineForecast], list[str]]:
    """Each method's forecasts (O, H) at ORIGINS (the last observed step, >= n_fit - 1) and its intervals,
    fitted on values[:n_fit]; with notes on the methods skipped."""
    if not have_statsforecast():
        return {}, [f"no statistical baselines: {MISSING}"]
    found, notes = {}, []
    values = np.asarray(values, dtype=np.float64)
    for method in methods:
        reason = skip_reason(method, n_fit, season)
        if reason:
            notes.append(reason)
            continue
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = make_model(method, season).fit(values[:n_fit])
                runs = [model.forward(values[: o + 1], horizon, level=list(levels)) for o in origins]
            except Exception as error:  # a numerical failure of the library's fit on this series
                notes.append(f"{method} failed on this series: {error}")
                continue
        point = np.stack([run["mean"] for run in runs])
        intervals = {
            level: (
                np.stack([run[f"lo-{level}"] for run in runs]),
                np.stack([run[f"hi-{level}"] for run in runs]),
            )
            for level in levels
        }
        found[method] = BaselineForecast(point, intervals, time.perf_counter() - start)
    return found, notes


def autocorrelation(values: np.ndarray, lag: int) -> float:
    """r_k = sum_t (y_t - m)(y_{t+k} - m) / sum_t (y_t - m)^2."""
    centred = values - values.mean()
    return float(np.dot(centred[:-lag], centred[lag:]) / np.dot(centred, centred))


def is_seasonal(values: np.ndarray, season: int) -> bool:
    """The M4 competition's 90% test: |r_s| > 1.645 sqrt((1 + 2 sum_{k<s} r_k^2) / n), for n >= 3s."""
    if season <= 1 or len(values) < 3 * season:
        return False
    spread = 1 + 2 * sum(autocorrelation(values, k) ** 2 for k in range(1, season))
    return abs(autocorrelation(values, season)) > 1.645 * np.sqrt(spread / len(values))


def naive2_forecast(train: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The M4 competition's Naive2: the last value of the seasonally adjusted series (classical
    multiplicative decomposition, when the seasonality test passes), times the seasonal indices: (H,)."""
    train = np.asarray(train, dtype=np.float64)
    if not is_seasonal(train, season):
        return np.full(horizon, train[-1])
    from statsmodels.tsa.seasonal import seasonal_decompose

    indices = seasonal_decompose(train, model="multiplicative", period=season).seasonal[-season:]  # (s,)
    return train[-1] / indices[-1] * indices[np.arange(horizon) % season]
