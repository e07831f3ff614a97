"""Many series, one model: a global LSTM over every window of every series.

Each series is encoded on its own (log, differences from one season before, scales fitted on that
series' training part: lstmkit.data.series_encoding), and the encoded series are laid end to end, so that
the single-series ForecastJob trains on them unchanged: the forecast origins of each series index into the
joined inputs, and no window crosses from one series into the next. The last VALIDATION steps of every
series are held out for early stopping and give the split-conformal intervals, pooled over the series in
each series' recent variability (lstmkit.tasks.forecast_blend).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lstmkit.data.series_encoding import Encoding
from lstmkit.models.forecaster import ForecastNetwork
from lstmkit.tasks.forecast import ForecastJob, Split, numbers_series
from lstmkit.tasks.forecast_blend import LEVELS, Intervals, local_scale
from lstmkit.train.loop import LoopState, TrainConfig, Trainer


@dataclass
class GlobalModel:
    """One network for many series, with each series' encoding and the intervals' error quantiles."""

    network: ForecastNetwork
    encodings: list[Encoding]
    window: int
    intervals: Intervals
    state: LoopState

    @property
    def horizon(self) -> int:
        return self.network.head.out_features

    def forecasts(self, series: list[np.ndarray], origins: list[np.ndarray]) -> list[np.ndarray]:
        """Each series' forecasts (O_i, H) from its ORIGINS (O_i,), in its units."""
        found = []
        for values, local, encoding in zip(series, origins, self.encodings):
            inputs = encoding.inputs(numbers_series("y", values))  # (N_i, C)
            outputs = self.network.predict(inputs, torch.from_numpy(local), self.window)  # (O_i, H)
            found.append(encoding.decode(values, local, outputs))
        return found

    def future(self, series: list[np.ndarray]) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
        """The H steps after each series' end (S, H), and each level's (lo, hi) (S, H)."""
        ends = [np.array([len(values) - 1]) for values in series]
        forecast = np.concatenate(self.forecasts(series, ends))  # (S, H)
        scale = np.concatenate(
            [local_scale(v, e, self.window, self.intervals.log) for v, e in zip(series, ends)]
        )
        return forecast, {level: self.intervals.bounds(forecast, scale, level) for level in LEVELS}


def fit_global(
    series: list[np.ndarray],
    horizon: int,
    season: int,
    config: TrainConfig,
    *,
    window: int,
    hidden_size: int = 64,
    num_layers: int = 1,
    batch_size: int = 64,
    validation: int | None = None,
    progress: str = "auto",
) -> GlobalModel:
    """Train one LSTM on every series (each (N_i,), positive for the log encoding), forecasting HORIZON
    steps; the last VALIDATION steps of each (default 2 x horizon) for early stopping and the intervals."""
    validation = validation or 2 * horizon
    log = all((values > 0).all() for values in series)
    encodings, inputs, levels, fit_origins, val_origins, starts = [], [], [], [], [], []
    start = 0
    for i, values in enumerate(series):
        frame = numbers_series("y", values)
        encoding = Encoding.fit(frame, len(values), season, log, season > 1, False)
        first, steps = encoding.offset + window - 1, len(values)
        if steps - validation - horizon <= first:
            raise ValueError(
                f"series {i + 1}: {steps} steps are too few for window {window} + season {season} + "
                f"horizon {horizon} + validation {validation}"
            )
        encodings.append(encoding)
        inputs.append(encoding.inputs(frame))
        levels.append(encoding.scaled_levels(values))
        fit_origins.append(start + torch.arange(first, steps - validation - horizon))
        val_origins.append(start + torch.arange(steps - validation - 1, steps - horizon))
        starts.append(start)
        start += steps
    split = Split(torch.cat(fit_origins), torch.cat(val_origins), torch.arange(0), start, 0)
    torch.manual_seed(config.seed)
    network = ForecastNetwork(inputs[0].shape[1], horizon, hidden_size, num_layers)
    job = ForecastJob(network, torch.cat(inputs), torch.cat(levels), split, window, batch_size, config.seed)
    state = Trainer(job, config, None, unit="windows", progress=progress).fit()
    model = GlobalModel(network.eval(), encodings, window, Intervals(log, {}, 0), state)
    held = [np.arange(len(values) - validation - 1, len(values) - horizon) for values in series]
    forecast = np.concatenate(model.forecasts(series, held))  # (sum O_i, H)
    actual = np.concatenate([v[o[:, None] + np.arange(1, horizon + 1)] for v, o in zip(series, held)])
    scale = np.concatenate([local_scale(v, o, window, log) for v, o in zip(series, held)])
    model.intervals = Intervals.fit(forecast, actual, scale, log)
    return model
