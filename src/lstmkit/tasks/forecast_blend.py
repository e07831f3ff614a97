"""The forecaster's final forecast and its intervals, both chosen on the validation part.

The blend: the LSTM, each statistical method, and the mean of the LSTM and the best statistical method
are scored on the validation part (the statistical methods fitted on the part before it); the one with the
lowest MAE is the forecast. On a long series the LSTM, or its mean with a statistical method, wins; on a
series too short for a network, a statistical method does, so that the default does not lose to it.

The intervals: split-conformal, from the blend's errors on the validation part. An error is measured in
the series' encoded units (log for a log-encoded series) divided by the series' recent variability,

    e(t, k) = (z_{t+k} - z_hat(t, k)) / scale_t,      z = log y if log, else y,
    scale_t = mean |z_s - z_{s-1}| over the W steps up to t        (locally scaled: calm and wild
                                                                    stretches get narrow and wide bands),

and the interval of level L at step k is z_hat(t, k) + scale_t * [q_k((1 - L) / 2), q_k((1 + L) / 2)],
q_k the empirical quantiles of the errors at step k, or, with fewer than MIN_EMPIRICAL of them, the normal
quantiles of their root mean square.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from lstmkit.stat_baselines import LEVELS

LSTM = "LSTM"
MIN_EMPIRICAL = 40  # errors per step below which the quantiles are the normal's


def mean_name(first: str, second: str) -> str:
    return f"mean({first}, {second})"


def candidates(forecasts: dict[str, np.ndarray], actual: np.ndarray) -> dict[str, np.ndarray]:
    """The forecasts to choose from: each one given, and the mean of the LSTM and the best other one
    (by MAE against ACTUAL); forecasts and actual (O, H)."""
    others = {name: f for name, f in forecasts.items() if name != LSTM}
    if LSTM not in forecasts or not others:
        return dict(forecasts)
    best = min(others, key=lambda name: np.mean(np.abs(others[name] - actual)))
    return {**forecasts, mean_name(LSTM, best): (forecasts[LSTM] + others[best]) / 2}


def choose(forecasts: dict[str, np.ndarray], actual: np.ndarray) -> dict[str, float]:
    """The weights of the candidate with the lowest MAE on (O, H) ACTUAL: {name: weight}."""
    scored = candidates(forecasts, actual)
    best = min(scored, key=lambda name: np.mean(np.abs(scored[name] - actual)))
    if best.startswith("mean("):
        first, second = best[len("mean(") : -1].split(", ", 1)
        return {first: 0.5, second: 0.5}
    return {best: 1.0}


def blend(forecasts: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """sum_m w_m * forecast_m: (O, H)."""
    return sum(weight * forecasts[name] for name, weight in weights.items())


def describe(weights: dict[str, float]) -> str:
    names = list(weights)
    return names[0] if len(names) == 1 else mean_name(*names)


def local_scale(values: np.ndarray, origins: np.ndarray, window: int, log: bool) -> np.ndarray:
    """scale_t = mean |z_s - z_{s-1}| over the WINDOW steps up to each origin t (see the module): (O,)."""
    z = np.log(values) if log else np.asarray(values, dtype=np.float64)
    steps = np.abs(np.diff(z, prepend=z[0]))
    total = np.concatenate([[0.0], np.cumsum(steps)])
    first = np.maximum(origins - window + 1, 1)
    scale = (total[origins + 1] - total[first]) / np.maximum(origins + 1 - first, 1)
    positive = scale[scale > 0]
    return np.where(scale > 0, scale, positive.mean() if len(positive) else 1.0)


@dataclass(frozen=True)
class Intervals:
    """Per level and step the error quantiles (lo, hi) in units of the series' scale; see the module."""

    log: bool
    quantiles: dict[int, tuple[tuple[float, ...], tuple[float, ...]]]  # level -> (lo (H,), hi (H,))
    errors_per_step: int

    @classmethod
    def fit(cls, forecast: np.ndarray, actual: np.ndarray, scale: np.ndarray, log: bool) -> Intervals:
        """From validation forecasts and actual values (O, H) and each row's scale (O,)."""
        encode = np.log if log else np.asarray
        errors = (encode(actual) - encode(forecast)) / scale[:, None]  # (O, H)
        quantiles = {}
        for level in LEVELS:
            tail = (1 - level / 100) / 2
            if len(errors) >= MIN_EMPIRICAL:
                lo, hi = np.quantile(errors, [tail, 1 - tail], axis=0, method="higher")
            else:
                spread = NormalDist().inv_cdf(1 - tail) * np.sqrt(np.mean(errors**2, axis=0))
                lo, hi = -spread, spread
            quantiles[level] = (tuple(lo.tolist()), tuple(hi.tolist()))
        return cls(log, quantiles, len(errors))

    def bounds(self, forecast: np.ndarray, scale: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
        """The interval of LEVEL around (O, H) forecasts with each row's scale (O,): (lo, hi)."""
        horizon = forecast.shape[1]
        lo, hi = (np.array(q[:horizon]) for q in self.quantiles[level])
        z = np.log(forecast) if self.log else forecast
        lower, upper = z + scale[:, None] * lo, z + scale[:, None] * hi
        return (np.exp(lower), np.exp(upper)) if self.log else (lower, upper)

    def to_dict(self) -> dict:
        return {
            "log": self.log,
            "quantiles": {str(k): [list(lo), list(hi)] for k, (lo, hi) in self.quantiles.items()},
            "errors_per_step": self.errors_per_step,
        }

    @classmethod
    def from_dict(cls, record: dict) -> Intervals:
        quantiles = {int(k): (tuple(lo), tuple(hi)) for k, (lo, hi) in record["quantiles"].items()}
        return cls(record["log"], quantiles, record["errors_per_step"])
