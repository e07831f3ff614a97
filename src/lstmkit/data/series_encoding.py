"""A series as model inputs and targets (log, seasonal differences, scales fitted on the training part
only, season position), its windows, and the way back from the model's outputs to forecasts.

The model sees a window of W steps ending at a forecast origin t and emits H values at once (direct
multi-output): the changes u_{t+k} - u_t, k = 1..H, of the encoded series u (see `Encoding`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from lstmkit.data.timeseries import Series

HARMONICS = 2  # sin/cos pairs describing the position in a season, when the season is an input


@dataclass(frozen=True)
class Encoding:
    """How a series becomes model inputs and targets; the scales are fitted on the training part only.

        z_t = log y_t                 if log (a positive series whose swings grow with its level), else y_t
        u_t = z_t - z_{t-s}           if seasonal_diff (a strong season of length s), else z_t
        inputs_t = [(u_t - u_mean) / u_scale, (u_t - u_{t-1}) / u_scale, (x_t - x_mean) / x_scale,
                    one-hot labels, sin(2 pi k p_t / s) and cos(2 pi k p_t / s) for k = 1..HARMONICS]
        target(t, k) = (u_{t+k} - u_t) / u_scale,  k = 1..H

    x are the numeric features; the sin/cos pairs (season_inputs) place step t in the season, p_t being
    the number of steps since 1970-01-01 (or the row number).
    A forecast is decoded back: u_{t+k} = u_t + u_scale * output_k, then z, then y.
    """

    season: int
    log: bool
    seasonal_diff: bool
    season_inputs: bool
    u_mean: float
    u_scale: float
    x_mean: tuple[float, ...]
    x_scale: tuple[float, ...]

    @classmethod
    def fit(
        cls, series: Series, n_train: int, season: int, log: bool, seasonal_diff: bool, season_inputs: bool
    ) -> Encoding:
        """Means and scales from the first ``n_train`` steps: nothing of the test part leaks in."""
        shell = cls(season, log, seasonal_diff, season_inputs, 0.0, 1.0, (), ())
        levels = shell.levels(series.values[:n_train])[shell.offset :]
        numeric = series.features[:n_train, : series.numeric_features]  # (n_train, F_numeric)
        return cls(
            season,
            log,
            seasonal_diff,
            season_inputs,
            float(levels.mean()),
            _scale(levels),
            tuple(numeric.mean(axis=0).tolist()),
            tuple(_scale(column) for column in numeric.T),
        )

    @property
    def offset(self) -> int:
        """The first step with an encoded value (seasonal differencing needs one season before)."""
        return self.season if self.seasonal_diff else 0

    def input_size(self, series: Series) -> int:
        return 2 + series.features.shape[1] + (2 * HARMONICS if self.season_inputs else 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> Encoding:
        return cls(**{**record, "x_mean": tuple(record["x_mean"]), "x_scale": tuple(record["x_scale"])})

    def levels(self, values: np.ndarray) -> np.ndarray:
        """u: (N,), NaN before ``offset``."""
        z = np.log(values) if self.log else np.asarray(values, dtype=np.float64)
        if not self.seasonal_diff:
            return z
        u = np.full_like(z, np.nan)
        u[self.season :] = z[self.season :] - z[: -self.season]
        return u

    def scaled_levels(self, values: np.ndarray) -> Tensor:
        """(u - u_mean) / u_scale as float32, 0 before ``offset``: (N,)."""
        scaled = (self.levels(values) - self.u_mean) / self.u_scale
        return torch.from_numpy(np.nan_to_num(scaled)).float()

    def inputs(self, series: Series) -> Tensor:
        """Every step's inputs: (N, C), C = ``input_size(series)``."""
        numeric = series.features[:, : series.numeric_features]
        levels = self.scaled_levels(series.values).numpy()  # (N,)
        changes = np.diff(levels, prepend=levels[0])  # (N,)
        changes[self.offset] = 0.0  # the first encoded step has no previous one
        columns = [
            levels[:, None],
            changes[:, None],
            (numeric - np.array(self.x_mean)) / np.array(self.x_scale),
            series.features[:, series.numeric_features :],
        ]
        if self.season_inputs:
            steps = len(series.values)
            position = series.clock.positions(series.times) if series.times is not None else np.arange(steps)
            angle = 2 * math.pi * (position % self.season)[:, None] / self.season  # (N, 1)
            harmonics = np.arange(1, HARMONICS + 1)
            columns += [np.sin(angle * harmonics), np.cos(angle * harmonics)]
        return torch.from_numpy(np.concatenate(columns, axis=1)).float()

    def decode(self, values: np.ndarray, origins: np.ndarray, outputs: Tensor) -> np.ndarray:
        """Forecasts in the series' units from the model's outputs: (O, H) for origins (O,)."""
        u_hat = self.levels(values)[origins, None] + outputs.double().numpy() * self.u_scale  # (O, H)
        if self.seasonal_diff:
            z = np.log(values) if self.log else values
            z_hat = np.empty_like(u_hat)
            for k in range(1, u_hat.shape[1] + 1):  # z_{t+k} = u_{t+k} + z_{t+k-s}, forecast or known
                before = z[origins + k - self.season] if k <= self.season else z_hat[:, k - 1 - self.season]
                z_hat[:, k - 1] = u_hat[:, k - 1] + before
            u_hat = z_hat
        return np.exp(u_hat) if self.log else u_hat


def _scale(values: np.ndarray) -> float:
    """The standard deviation, or 1 for a constant column (which then stays constant)."""
    scale = float(np.std(values))
    return scale if scale > 0 else 1.0


def gather_windows(inputs: Tensor, origins: Tensor, window: int) -> Tensor:
    """The W steps ending at each origin: inputs (N, C), origins (B,) -> (B, W, C)."""
    return inputs[origins[:, None] + torch.arange(1 - window, 1)]


def gather_changes(levels: Tensor, origins: Tensor, horizon: int) -> Tensor:
    """The targets levels[t + k] - levels[t], k = 1..H, of origins of any shape: (...,) -> (..., H)."""
    ahead = levels[origins[..., None] + torch.arange(1, horizon + 1)]  # (..., H)
    return ahead - levels[origins][..., None]
