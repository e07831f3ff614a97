"""`lstmkit forecast`, `lstmkit.Forecaster`: forecast a column of a CSV file (or DataFrame) H steps ahead.

The series is split in time: the test part at the end, a validation part (for early stopping) at the end
of what remains, the training part before it. An LSTM reads a window of W steps and emits the next H
values at once. The forecast proper (lstmkit's) is the best on the validation part of the LSTM, the
statistical methods (statsforecast's AutoETS, AutoTheta, AutoARIMA) and the mean of the LSTM and the best
of them, with split-conformal 80% and 95% intervals (see forecast_blend). It is scored on every forecast
origin of the test part against the LSTM alone, the statistical methods, naive (the last value) and
seasonal naive (the value one season before), in RMSE, MAE and MASE, its intervals by coverage and MSIS.
The command line hands a file of many series to lstmkit.GlobalForecaster (forecast_panel).
"""

from __future__ import annotations

import argparse
import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lstmkit import stat_baselines
from lstmkit.baselines import naive_forecast, seasonal_naive_forecast
from lstmkit.config import POSITIVE_INT, REQUIRED, number, option, with_defaults
from lstmkit.data.sequences import number_list
from lstmkit.data.series_encoding import Encoding, gather_changes, gather_windows
from lstmkit.data.timeseries import (
    STEPLESS,
    Series,
    detect_season,
    load_series,
    seasonal_strength,
    spread_grows_with_level,
)
from lstmkit.errors import InputError
from lstmkit.files import write_atomic
from lstmkit.models.forecaster import ForecastNetwork
from lstmkit.plots.record import GateRecord
from lstmkit.tasks.estimator import Estimator
from lstmkit.tasks.forecast_blend import LEVELS, LSTM, Intervals, blend, choose, describe, local_scale
from lstmkit.tasks.registry import Task, register
from lstmkit.tasks.runner import Outcome, actions_of, add_command, add_train_command
from lstmkit.train import distributed
from lstmkit.train.loop import TrainConfig
from lstmkit.train.metrics import coverage, mae, mase, msis, rmse

FORECAST_PNG = "forecast.png"
FORECAST_CSV = "forecast.csv"
VALIDATION_FRACTION = 0.15  # of the training part, at its end, for early stopping
STRONG_SEASON = 0.64  # seasonal strength above which the series is seasonally differenced (as R's nsdiffs)
CLEAR_SEASON = 0.3  # seasonal strength above which the position in the season is an input
LONGEST_WINDOW = 120  # steps; longer seasons enter as sin/cos inputs instead of whole in the window
SAMPLES_PER_EPOCH = 4096  # windows per epoch at most, so that long series still validate often
SMALL_DATA = 1000  # training windows; fewer get a small model, which cannot memorise them
SMALL_HIDDEN, LARGE_HIDDEN = 8, 32  # LSTM units for small and large data
STEP_NAMES = {"hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month", "quarterly": "quarter"}
LONG_FORMAT = ("unique_id", "ds", "y")  # Nixtla's column names, as Darts and NeuralForecast users hold data
SINGLE_TEST_SIZE = 0.2  # the test part of one series, as a fraction
SHOWN_ROWS = 20  # rows of a many-series forecast printed
ARIMA_SHORT_STEPS = 300  # many series: AutoARIMA runs when every series is this short (its search is slow)
AUTO = ("auto", "yes", "no")


@with_defaults(epochs=300, minutes=3.0, lr=1e-3, patience=30, schedule="constant", grad_clip=1.0)
class ForecastConfig(TrainConfig):
    """What the forecaster reads and how large it is; None: chosen from the data."""

    horizon: int = option(REQUIRED, "steps to forecast", POSITIVE_INT, metavar="H", group="data")
    season: int | None = option(
        None, "season length in steps (default: detected)", POSITIVE_INT, group="data"
    )
    window: int | None = option(
        None, "steps the model reads (default: 2-3 seasons)", POSITIVE_INT, group="data"
    )
    log: str = option("auto", "log-transform", choices=AUTO, group="data")
    seasonal_diff: str = option("auto", "feed differences from one season before", choices=AUTO, group="data")
    hidden_size: int | None = option(
        None,
        f"LSTM units (default: {SMALL_HIDDEN} below {SMALL_DATA} training windows, else {LARGE_HIDDEN})",
        POSITIVE_INT,
    )
    num_layers: int = option(1, "stacked LSTM layers", POSITIVE_INT, flag="--layers")
    batch_size: int | None = option(
        None, "windows per optimizer step (default: 32, fewer when there are under 128 windows)", POSITIVE_INT
    )


@dataclass(frozen=True)
class Split:
    """Forecast origins (index of the last observed step) of each part; targets are origin + 1..H."""

    train: torch.Tensor  # (O_train,) targets before the validation part
    validation: torch.Tensor  # (O_val,) targets in the validation part
    test: torch.Tensor  # (O_test,) targets in the test part, which starts at n_train
    n_train: int  # steps before the test part (training + validation)
    n_validation: int


class ForecastJob:
    """What the Trainer needs: shuffled batches of training origins, their loss, the validation loss.

    The training loss scores the forecasts made at every step of each window (see `ForecastNetwork`); the
    validation loss only the last step's, the forecast proper.
    """

    def __init__(
        self, model: ForecastNetwork, inputs, levels, split: Split, window: int, batch_size: int, seed: int
    ):
        self.model, self.inputs, self.levels, self.split = model, inputs, levels, split
        self.window, self.batch_size, self.seed = window, batch_size, seed
        self.horizon = model.head.out_features
        self.warm_up = window // 4
        # every step's targets, computed once: a batch then gathers whole rows (B, W, H)
        last = len(levels) - self.horizon  # the last step with H steps after it
        self.changes = gather_changes(levels, torch.arange(max(last, 0)), self.horizon)  # (N - H, H)

    def batches(self, epoch: int) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = self.split.train[torch.randperm(len(self.split.train), generator=generator)]
        return list(order[:SAMPLES_PER_EPOCH].split(self.batch_size))

    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        """MSE over every step of the windows after the first ``warm_up`` (too little read yet)."""
        outputs = self.model(gather_windows(self.inputs, batch, self.window))  # (B, W, H)
        scored = batch[:, None] + torch.arange(1 - self.window + self.warm_up, 1)  # (B, W - warm_up)
        return F.mse_loss(outputs[:, self.warm_up :], self.changes[scored]), len(batch)

    def validate(self) -> float:
        origins = distributed.items(self.split.validation)  # under torchrun, this rank's share
        if not len(origins):
            return distributed.weighted_mean(0.0, 0)
        outputs = self.model.predict(self.inputs, origins, self.window)  # (O_val, H)
        loss = F.mse_loss(outputs, gather_changes(self.levels, origins, self.horizon)).item()
        return distributed.weighted_mean(loss, len(origins))


# ---- choices -------------------------------------------------------------------------------------------
def count_test_steps(test_size: float, steps: int, source: str) -> int:
    """test_size as a count of steps: a fraction of the series (0 < f < 1) or a whole number."""
    count = round(test_size * steps) if test_size < 1 else int(test_size)
    if not 1 <= count < steps:
        raise InputError(
            f"{source}: --test-size {test_size:g} leaves {count} of {steps} steps for testing; give a "
            f"fraction between 0 and 1 or a count from 1 to {steps - 1}"
        )
    return count


def default_window(season: int, available: int) -> int:
    """Three seasons (two if three are longer than LONGEST_WINDOW; half of it for longer seasons, which
    then enter as sin/cos inputs; 16 steps without a season), at most half of the ``available`` steps."""
    fitting = [k * season for k in (3, 2) if k * season <= LONGEST_WINDOW]
    window = 16 if season <= 1 else fitting[0] if fitting else LONGEST_WINDOW // 2
    return max(1, min(window, available // 2))


def choose_encoding(
    config: ForecastConfig, series: Series, n_train: int, season: int, window: int
) -> Encoding:
    """log, seasonal differencing and season inputs: from the config, or (auto) from the training part."""
    train = series.values[:n_train]
    log = config.log == "yes" or (config.log == "auto" and spread_grows_with_level(train, season))
    if log and (train <= 0).any():
        raise InputError(
            f"--log yes needs a positive series, but {series.target} has values <= 0; use --log no"
        )
    strength = seasonal_strength(np.log(train) if log else train, season)
    seasonal_diff = config.seasonal_diff == "yes" or (
        config.seasonal_diff == "auto" and strength >= STRONG_SEASON and season <= window
    )
    season_inputs = season > 1 and not seasonal_diff and strength >= CLEAR_SEASON
    return Encoding.fit(series, n_train, season, log, seasonal_diff, season_inputs)


def split_series(series: Series, n_test: int, horizon: int, window: int, encoding: Encoding, source) -> Split:
    steps = len(series.values)
    n_train = steps - n_test
    if horizon > n_test:
        raise InputError(
            f"--horizon {horizon} is longer than the test part ({n_test} steps); use a horizon of at most "
            f"{n_test} or a larger --test-size"
        )
    n_validation = max(horizon, round(VALIDATION_FRACTION * n_train))
    first = encoding.offset + window - 1
    train = torch.arange(first, max(first, n_train - n_validation - horizon))
    if len(train) < 1:
        need = first + horizon + n_validation + n_test + 1
        season = f" + season {encoding.season} (seasonal differencing)" if encoding.offset else ""
        raise InputError(
            f"{source}: {steps} steps are too few for window {window}{season} + horizon {horizon} + "
            f"validation {n_validation} + test {n_test}: need at least {need}; use a smaller --window, "
            "--horizon or --test-size, or a longer series"
        )
    validation = torch.arange(max(n_train - n_validation - 1, first), n_train - horizon)
    return Split(train, validation, torch.arange(n_train - 1, steps - horizon), n_train, n_validation)


def score(forecast: np.ndarray, actual: np.ndarray, train: np.ndarray, season: int) -> dict[str, float]:
    """RMSE, MAE and MASE (scaled by the in-sample seasonal naive MAE of the training part)."""
    f, a, t = (torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) for v in (forecast, actual, train))
    return {"rmse": rmse(f, a), "mae": mae(f, a), "mase": mase(f, a, t, season)}


def interval_scores(bands: dict, actual: np.ndarray, train: np.ndarray, season: int) -> dict[str, dict]:
    """Coverage and MSIS (M4's scaled interval score, alpha = 1 - level) of each level's (lo, hi) (O, H)."""
    return {
        str(level): {
            "coverage": coverage(lo, hi, actual),
            "msis": msis(lo, hi, actual, train, season, alpha=1 - level / 100),
        }
        for level, (lo, hi) in bands.items()
    }


def source_name(data) -> str:
    return str(data) if isinstance(data, (str, Path)) else "DataFrame"


def numbers_series(target: str, values) -> Series:
    """A bare series of the target's values, oldest first (no times, no features)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or not np.isfinite(values).all():
        raise InputError("the values must be one list of finite numbers (no nan or inf), oldest first")
    return Series(target, values, np.zeros((len(values), 0)), [], 0, {}, None, STEPLESS, "step")


class Forecaster(Estimator):
    """Forecasts a column H steps ahead from the W steps before (a CSV file or a pandas DataFrame: one
    row per step, a column per variable; or Nixtla's long format ``unique_id, ds, y`` for one series).

        fc = lstmkit.Forecaster(horizon=12).fit("sales.csv", target="sales", test_size=24)
        fc.evaluate()                  # RMSE, MAE, MASE on the test part, the baselines beside them
        fc.predict()                   # a DataFrame: the H steps after the end of the data, intervals
        fc.gates("sales.csv")          # the gates while the model reads its last window

    ``fit`` holds the last ``test_size`` steps out (a fraction or a count), early-stops on the end of what
    remains, and fits every scale on the training part only; season, window, log and seasonal
    differencing are chosen from the training part unless given. The forecast and its intervals are then
    chosen on that validation part (see lstmkit.tasks.forecast_blend).
    """

    task = "forecast"
    Config = ForecastConfig
    loss_name = "mean squared error of the scaled changes"
    unit = "windows"

    def fit(
        self,
        data,
        target: str | None = None,
        *,
        time: list[str] | None = None,
        features: list[str] | tuple[str, ...] = (),
        test_size: float = 0.2,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        verbose: bool = True,
        **training,
    ) -> Forecaster:
        """Train on DATA (a CSV path or DataFrame) to forecast TARGET (with long-format columns
        ``unique_id, ds, y``: y); TIME names the time column(s) (default: detected), FEATURES other
        input columns; the last TEST_SIZE steps are held out for ``evaluate``."""
        self._configure(training, checkpoint_dir, resume)
        cfg = self.config
        self.source = source_name(data)
        refuse_many(data)
        target, time = self._columns(data, target, time)
        series = load_series(data, target, time, list(features))
        steps = len(series.values)
        n_test = count_test_steps(test_size, steps, self.source)
        n_train = steps - n_test
        if cfg.season and cfg.season >= n_train:
            raise InputError(
                f"--season {cfg.season} is out of range: {self.source} has {n_train} steps before the test "
                f"part; give a season of at most {n_train - 1}, or leave --season out to detect it"
            )
        if cfg.season:
            self.season, self.season_from = cfg.season, "--season"
        else:
            self.season, self.season_from = detect_season(series.values[:n_train], series.clock.frequency)
        self.window = cfg.window or default_window(self.season, n_train - self.season)
        self.encoding = choose_encoding(cfg, series, n_train, self.season, self.window)
        split = split_series(series, n_test, cfg.horizon, self.window, self.encoding, self.source)
        self.series, self.split, self.steps = series, split, steps
        self.columns = {
            "target": series.target,
            "time": series.time_name.split("+") if series.times is not None else [],
            "features": list(features),
            "categories": series.categories,
            "frequency": series.clock.frequency,
        }
        self.input_size = self.encoding.input_size(series)
        torch.manual_seed(cfg.seed)
        self.hidden_size = cfg.hidden_size or (
            SMALL_HIDDEN if len(split.train) < SMALL_DATA else LARGE_HIDDEN
        )
        batch_size = cfg.batch_size or min(32, max(1, len(split.train) // 4))
        network = self._build_network()
        if verbose:
            self._describe(network)
        inputs = self.encoding.inputs(series)  # (N, C)
        levels = self.encoding.scaled_levels(series.values)  # (N,)
        job = ForecastJob(network, inputs, levels, split, self.window, batch_size, cfg.seed)
        self._finish_fit(network, self._trainer(job, checkpoint_dir, verbose).fit(resume))
        self._choose_blend(series, split)
        if verbose:
            print(f"Forecast: {describe(self.weights)}, the best on the validation part; {self.blend_notes}")
        return self

    def _choose_blend(self, series: Series, split: Split) -> None:
        """The weights of the forecast proper and its intervals, from the validation part (see
        forecast_blend); the statistical methods are fitted on the part before it."""
        origins = split.validation.numpy()
        actual = series.values[origins[:, None] + np.arange(1, self.config.horizon + 1)]  # (O, H)
        forecasts, _, notes = self._all_forecasts(series, split.n_train - split.n_validation, origins)
        self.weights = choose(forecasts, actual)
        combined = blend(forecasts, self.weights)
        log = self.encoding.log and bool((combined > 0).all())
        scale = local_scale(series.values, origins, self.window, log)
        self.intervals = Intervals.fit(combined, actual, scale, log)
        maes = ", ".join(f"{name} {np.mean(np.abs(f - actual)):.4g}" for name, f in forecasts.items())
        self.blend_notes = f"validation MAE: {maes}" + "".join(f"; {note}" for note in notes)

    def _all_forecasts(self, series: Series, n_fit: int, origins: np.ndarray):
        """The LSTM's and the statistical methods' forecasts (fitted on the first N_FIT steps, no refit)
        at ORIGINS: ({name: (O, H)}, the statistical methods' {name: {level: (lo, hi)}}, notes)."""
        lstm = {LSTM: self._forecasts(series, origins)}
        found, notes = stat_baselines.statistical_forecasts(
            series.values, n_fit, origins, self.config.horizon, self.season
        )
        points = {name: f.point for name, f in found.items()}
        return {**lstm, **points}, {name: f.intervals for name, f in found.items()}, notes

    def _blended(self, forecasts: dict[str, np.ndarray]) -> np.ndarray:
        missing = [name for name in self.weights if name not in forecasts]
        if missing:
            why = "skipped on this data" if stat_baselines.have_statsforecast() else stat_baselines.MISSING
            raise InputError(
                f"this model's forecast is {describe(self.weights)}, but {', '.join(missing)} could not be "
                f"computed here ({why})"
            )
        return blend(forecasts, self.weights)

    @staticmethod
    def _columns(data, target: str | None, time: list[str] | None) -> tuple[str, list[str] | None]:
        """TARGET and TIME, or Nixtla's y and ds (a single series: its unique_id column is dropped)."""
        if target is not None:
            return target, time
        columns = list(getattr(data, "columns", []))
        if isinstance(data, (str, Path)) and Path(data).is_file():
            with open(data, encoding="utf-8-sig", errors="replace", newline="") as file:
                columns = next(csv.reader(file), [])
        if "y" not in columns:
            raise InputError(
                f"{source_name(data)}: which column to forecast? Give target= (--target COL), or name the "
                f"columns {', '.join(LONG_FORMAT)} as Nixtla's tools do"
            )
        return "y", time if time is not None else (["ds"] if "ds" in columns else None)

    @classmethod
    def load(cls, directory: str | Path):
        """The forecaster saved in DIRECTORY: a GlobalForecaster when it was trained on many series."""
        from lstmkit.tasks.forecast_panel import LAYOUT, GlobalForecaster
        from lstmkit.train.checkpoint import CONFIG_FILE, read_json

        path = Path(directory) / CONFIG_FILE
        fitted = read_json(path).get("fitted", {}) if path.is_file() else {}
        if cls is Forecaster and isinstance(fitted, dict) and fitted.get("layout") == LAYOUT:
            return GlobalForecaster.load(directory)
        return super().load(directory)

    def _describe(self, network: ForecastNetwork) -> None:
        series, split, encoding, cfg = self.series, self.split, self.encoding, self.config
        span = ""
        if series.times is not None:
            first, last = series.clock.format(series.times[[0, -1]])
            span = f" from {first} to {last}"
        steps = f"{len(series.values)} {series.clock.frequency} steps"
        print(f"forecast: {self.source}: {steps} of {series.target}{span}.")
        for note in series.notes:
            print(f"  {note}")
        if series.feature_names:
            print(f"  features: {', '.join(series.feature_names)}")
        inputs = "log, " if encoding.log else ""
        inputs += f"seasonal differences (lag {self.season}), " if encoding.seasonal_diff else ""
        inputs += "the position in the season (sin/cos), " if encoding.season_inputs else ""
        print(
            f"Season {self.season} ({self.season_from}); window {self.window} steps; inputs: {inputs}"
            f"scaled on the training part.\nSplit: train {split.n_train - split.n_validation}, validation "
            f"{split.n_validation}, test {len(series.values) - split.n_train} steps ({len(split.train)} "
            f"training windows).\nModel: LSTM {cfg.num_layers} x {self.hidden_size} -> linear {cfg.horizon} "
            f"step(s), {sum(p.numel() for p in network.parameters()):,} parameters."
        )

    # ---- reading with the trained columns --------------------------------------------------------------
    def _series(self, data, what: str = "the data") -> Series:
        """DATA (a CSV path or DataFrame with the training columns; or, for a model without features or
        time-of-season inputs, the target's values: a list, an array or "1,2,3") cleaned as in training,
        long enough for the model's window."""
        columns = self.columns
        if isinstance(data, str) and not Path(data).is_file() and "," in data:
            data = number_list(data)
        if isinstance(data, (list, tuple, np.ndarray)):
            if columns["features"]:
                raise InputError(
                    f"the model also reads {', '.join(columns['features'])}; give a CSV file or DataFrame "
                    "with them"
                )
            if self.encoding.season_inputs and columns["time"]:
                raise InputError(
                    f"the model reads the position in the season from {'+'.join(columns['time'])}; "
                    "give a CSV file or DataFrame with that column"
                )
            series, name = numbers_series(columns["target"], data), what
        else:
            series = load_series(
                data, columns["target"], columns["time"], columns["features"], columns["categories"]
            )
            name = source_name(data)
        steps, offset = len(series.values), self.encoding.offset
        if self.encoding.log and (series.values <= 0).any():
            raise InputError(
                f"{name}: {series.target} has values <= 0, but the model forecasts its logarithm (it was "
                "trained on a positive series); check the column"
            )
        if steps < offset + self.window:
            raise InputError(
                f"{name}: {steps} steps are too few: the model reads the last {self.window}"
                f"{f' + {offset} (one season)' if offset else ''}; give a longer series"
            )
        return series

    def _fitted_series(self, method: str) -> Series:
        if getattr(self, "series", None) is None:
            raise InputError(f"{method}() needs data: this model was loaded, not fitted in this session")
        return self.series

    # ---- use ---------------------------------------------------------------------------------------------
    def _forecasts(self, series: Series, origins: np.ndarray) -> np.ndarray:
        """The model's forecasts in the series' units for ORIGINS (O,): (O, H)."""
        outputs = self._check_fitted().predict(
            self.encoding.inputs(series), torch.from_numpy(origins), self.window
        )
        return self.encoding.decode(series.values, origins, outputs)

    def predict(self, data=None, horizon: int | None = None):
        """A pandas DataFrame of the HORIZON steps (default: the model's) after the last row of DATA
        (default: the data it was fitted on): columns step (1..H), ds (the times, when the data has
        them) and forecast."""
        self._check_fitted()
        horizon = self._horizon(horizon)
        return self._future(self._fitted_series("predict") if data is None else self._series(data), horizon)

    def _horizon(self, horizon: int | None) -> int:
        return asked_horizon(horizon, self.config.horizon, self.directory)

    def _future(self, series: Series, horizon: int):
        import pandas as pd

        steps = len(series.values)
        last = np.array([steps - 1])
        forecasts, _, _ = self._all_forecasts(series, steps, last)  # the statistical methods fitted on all
        forecast = self._blended(forecasts)  # (1, H)
        frame = {"step": np.arange(1, horizon + 1)}
        if series.times is not None:
            frame["ds"] = series.clock.later(series.times[-1], horizon)
        frame["forecast"] = forecast[0, :horizon]
        scale = local_scale(series.values, last, self.window, self.intervals.log)
        for level in LEVELS:
            lo, hi = self.intervals.bounds(forecast, scale, level)
            frame[f"lo_{level}"], frame[f"hi_{level}"] = lo[0, :horizon], hi[0, :horizon]
        return pd.DataFrame(frame)

    def evaluate(self, data=None, test_size: float | None = None) -> dict:
        """RMSE, MAE and MASE of every forecast origin of the test part, and of the naive and seasonal naive
        forecasts on the same origins: the test part held out by fit (DATA None), or the last TEST_SIZE
        steps of DATA (default: as many as fit held out), the model as trained."""
        self._check_fitted()
        if data is None:
            series, n_train = self._fitted_series("evaluate"), self.split.n_train
        else:
            series = self._series(data)
            steps = len(series.values)
            held_out = test_size or self.steps - self.split.n_train
            n_train = steps - count_test_steps(held_out, steps, source_name(data))
        values, horizon, season = series.values, self.config.horizon, self.season
        origins = np.arange(max(n_train - 1, self.encoding.offset + self.window - 1), len(values) - horizon)
        if not len(origins):
            raise InputError(f"the test part holds no forecast origin: it needs at least {horizon} steps")
        actual = values[origins[:, None] + np.arange(1, horizon + 1)]  # (O, H)
        models, stat_bands, notes = self._all_forecasts(series, n_train, origins)
        forecasts = {
            "lstmkit": self._blended(models),
            **models,
            "naive": naive_forecast(values, origins, horizon),
            "seasonal_naive": seasonal_naive_forecast(values, origins, horizon, season),
        }
        train = values[:n_train]
        scores = {name: score(f, actual, train, season) for name, f in forecasts.items()}
        scale = local_scale(values, origins, self.window, self.intervals.log)
        bands = {level: self.intervals.bounds(forecasts["lstmkit"], scale, level) for level in LEVELS}
        intervals = {"lstmkit": interval_scores(bands, actual, train, season)}
        for name, found in stat_bands.items():
            intervals[name] = interval_scores(found, actual, train, season)
        judged = {name: s for name, s in scores.items() if name != LSTM}  # lstmkit against the others
        winner = {key: min(judged, key=lambda name: judged[name][key]) for key in ("mase", "rmse")}
        self.evaluation = (series, origins, forecasts, scores, len(values) - n_train, intervals)
        self._record(
            {
                **scores["lstmkit"],
                "forecast": describe(self.weights),
                "blend": self.weights,
                "blend_chosen_on": self.blend_notes,
                "LSTM": scores[LSTM],
                "baselines": {name: s for name, s in scores.items() if name not in ("lstmkit", LSTM)},
                "baseline_notes": notes,
                "intervals": intervals,
                "winner": winner,
                "horizon": horizon,
                "season": season,
                "season_from": self.season_from,
                "window": self.window,
                "series_steps": len(values),
                "train_steps": self.split.n_train - self.split.n_validation,
                "validation_steps": self.split.n_validation,
                "test_steps": len(values) - n_train,
                "forecast_origins": len(origins),
                "encoding": self.encoding.to_dict(),
                "missing_values": series.missing,
                "data_notes": series.notes,
            }
        )
        return self.metrics

    @torch.no_grad()
    def gates(self, data) -> GateRecord:
        """The gates while the model reads the last window of DATA (a CSV path or DataFrame with the
        training columns, or the target's values), with the forecast of what follows."""
        network = self._check_fitted().eval()
        series = self._series(data, "TEXT")
        window, steps = self.window, len(series.values)
        inputs = self.encoding.inputs(series)  # (N, C)
        forecast = self._forecasts(series, np.array([steps - 1]))[0]
        shown_steps = np.arange(steps - window, steps)
        if series.times is not None:
            when = series.clock.format(series.times[shown_steps])
            ahead = series.clock.format(series.clock.later(series.times[-1], len(forecast)))
        else:
            when = [f"step {s + 1}" for s in shown_steps]
            ahead = [f"step {steps + k}" for k in range(1, len(forecast) + 1)]
        values = series.values[shown_steps]
        return GateRecord.from_trace(
            network.gate_trace(inputs[steps - window :]),
            False,
            task=self.task,
            title=f"forecaster: the last {window} steps of {series.target}",
            tokens=[f"{v:.4g}" for v in values],
            token_kind="value",
            summary="forecast of what follows: "
            + ", ".join(f"{t}: {v:.4g}" for t, v in zip(ahead, forecast)),
            notes=[f"{t}: {series.target} {v:.6g}" for t, v in zip(when, values)],
            series=values.tolist(),
            series_name=series.target,
        )

    def score_table(self) -> str:
        """The last evaluation's scores as a table, the baselines beside the model, and the winner."""
        _, origins, _, scores, _, intervals = self.evaluation
        horizon = self.config.horizon
        lines = [f"Test part: {len(origins)} forecast origins x {horizon} step(s), in the series' units:"]
        head = f"  {'':16}{'RMSE':>10}{'MAE':>10}{'MASE':>8}"
        lines.append(f"{head}{'cover 80%':>11}{'cover 95%':>11}{'MSIS':>8}")
        for name, s in scores.items():
            row = f"  {name:16}{s['rmse']:#10.4g}{s['mae']:#10.4g}{s['mase']:8.3f}"
            if name in intervals:
                i = intervals[name]
                row += f"{i['80']['coverage']:11.1%}{i['95']['coverage']:11.1%}{i['95']['msis']:8.2f}"
            lines.append(row)
        lines.append(f"  lstmkit = {describe(self.weights)}, chosen on the validation part")
        winner = self.metrics["winner"]
        lines.append(f"Best on the test part: {winner['mase']} by MASE (and MAE), {winner['rmse']} by RMSE")
        for note in self.metrics["baseline_notes"]:
            lines.append(f"  {note}")
        return "\n".join(lines)

    def _plots(self, directory: Path) -> list[Path]:
        from lstmkit.plots.plots import plot_forecast  # matplotlib only when a picture is drawn

        if getattr(self, "evaluation", None) is None:
            return []
        series, origins, forecasts, scores, n_test, _ = self.evaluation
        horizon, season = self.config.horizon, self.season
        step = STEP_NAMES.get(series.clock.frequency, "step")
        path = directory / FORECAST_PNG
        plot_forecast(
            path,
            series.times if series.times is not None else np.arange(len(series.values)),
            series.values,
            origins,
            forecasts,
            {name: s["mae"] for name, s in scores.items()},
            context=min(max(2 * season, 2 * horizon), n_test // 2),
            time_label=time_label(series),
            value_label=series.target,
            title=f"{Path(self.source).name}: {series.target} forecast {plural(horizon, step)} ahead; "
            f"test part: the last {plural(n_test, step)}",
            step_name=step,
        )
        return [path]

    # ---- save and load -------------------------------------------------------------------------------------
    def _describe_fitted(self) -> str:
        target = self.columns["target"]
        return f"{target!r}, window {self.window}, LSTM {self.config.num_layers} x {self.hidden_size}"

    def _fitted_state(self) -> dict:
        """What fit chose and learned; the series itself is not kept (predict and evaluate read it again)."""
        return {
            **self.columns,
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "window": self.window,
            "season": self.season,
            "season_from": self.season_from,
            "split": {"n_train": self.split.n_train, "n_validation": self.split.n_validation},
            "steps": self.steps,
            "encoding": self.encoding.to_dict(),
            "source": self.source,
            "blend": self.weights,
            "blend_chosen_on": self.blend_notes,
            "intervals": self.intervals.to_dict(),
        }

    def _restore_fitted(self, state: dict) -> None:
        self.columns = {key: state[key] for key in ("target", "time", "features", "categories", "frequency")}
        self.encoding = Encoding.from_dict(state["encoding"])
        self.weights, self.blend_notes = state["blend"], state["blend_chosen_on"]
        self.intervals = Intervals.from_dict(state["intervals"])
        self.window, self.season, self.season_from = state["window"], state["season"], state["season_from"]
        self.hidden_size, self.input_size, self.source = (
            state["hidden_size"],
            state["input_size"],
            state["source"],
        )
        self.series, self.steps = None, state["steps"]  # predict and evaluate read the data again
        self.split = Split(*(torch.arange(0),) * 3, state["split"]["n_train"], state["split"]["n_validation"])

    def _build_network(self) -> ForecastNetwork:
        return ForecastNetwork(self.input_size, self.config.horizon, self.hidden_size, self.config.num_layers)


def asked_horizon(horizon: int | None, trained: int, directory: Path | None) -> int:
    """HORIZON (default: the TRAINED one), checked to be 1 to TRAINED; DIRECTORY names the model."""
    horizon = horizon or trained
    if not 1 <= horizon <= trained:
        where = f" in {directory}" if directory else ""
        raise InputError(
            f"--horizon {horizon} is out of range: the model{where} forecasts {trained} step(s); ask for "
            f"1 to {trained}, or train again with --horizon {horizon}"
        )
    return horizon


def refuse_many(data) -> None:
    """InputError for a file or DataFrame of many series: they are the GlobalForecaster's."""
    from lstmkit.data.panel import ID, as_table, detect_layout

    if isinstance(data, (str, Path)) and not Path(data).is_file():
        return  # load_series says what is wrong with the path
    layout = detect_layout(data)
    if layout != "single":
        count = len(set(as_table(data).column(ID))) if layout == "long" else 0
        what = "the M4 wide layout" if layout == "wide" else f"{count} series ({ID})"
        raise InputError(
            f"{source_name(data)}: holds {what}; this forecaster models one series: use "
            "lstmkit.GlobalForecaster for one model of all of them, or choose one, e.g. "
            "df[df.unique_id == 'H1']"
        )


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def time_label(series: Series) -> str:
    if series.times is None:
        return "step (row of the CSV)"
    columns = series.time_name.split("+")
    name = columns[0] if len(columns) == 1 else f"time from {', '.join(columns)}"
    return f"{name} ({series.clock.frequency})"


# ---- the command line ----------------------------------------------------------------------------------
def train(fc: Forecaster, args: argparse.Namespace, out_dir: Path) -> Outcome:
    """Fit and evaluate: the Forecaster on one series, the GlobalForecaster on a file of many."""
    from lstmkit.data.panel import detect_layout

    if args.test_file is not None or detect_layout(args.csv, args.id or "unique_id") != "single":
        return train_many(fc, args, out_dir)
    if args.id is not None:
        raise InputError(f"{args.csv}: --id {args.id}: the column holds one series (or is absent)")
    fc.fit(
        args.csv,
        args.target,
        time=args.time,
        features=args.features,
        test_size=SINGLE_TEST_SIZE if args.test_size is None else args.test_size,
        checkpoint_dir=out_dir,
        resume=args.resume,
    )
    fc.evaluate()
    return Outcome(
        fc.score_table(), f"Forecast beyond the data with: lstmkit forecast predict {out_dir} {args.csv}"
    )


def train_many(fc: Forecaster, args: argparse.Namespace, out_dir: Path) -> Outcome:
    from lstmkit.data.panel import DS, ID, Y
    from lstmkit.tasks.forecast_panel import GlobalForecaster

    if args.time is not None and len(args.time) > 1:
        raise InputError(f"--time {','.join(args.time)}: a file of many series has one time column (ds)")
    gf = GlobalForecaster(**fc.get_params())
    gf.fit(
        args.csv,
        test_data=args.test_file,
        id=args.id or ID,
        time=args.time[0] if args.time else DS,
        target=args.target or Y,
        features=args.features,
        test_size=args.test_size,
        statistical=args.baselines,
        checkpoint_dir=out_dir,
        resume=args.resume,
    )
    if gf.test_steps:
        gf.evaluate()
        summary = gf.score_table()
    else:
        gf.record_fit()
        summary = (
            f"No test part (--test-size 0): every step of the {len(gf.ids)} series trained the model; the "
            f"validation loss at the end of each is {gf.training_state.best:.4g}."
        )
    data = args.csv if args.test_file is None else "FILE (the series up to now)"
    return Outcome(summary, f"Forecast beyond the data with: lstmkit forecast predict {out_dir} {data}", gf)


def predict(args: argparse.Namespace) -> None:
    fc = Forecaster.load(args.model_dir)
    if not isinstance(fc, Forecaster):
        return predict_many(fc, args)
    horizon = fc._horizon(args.horizon)
    series = fc._series(args.csv)
    frame = fc._future(series, horizon)
    header, rows = ["step"], [[k] for k in frame["step"]]
    if series.times is not None:
        header.append(series.time_name if "+" not in series.time_name else "time")
        for row, when in zip(rows, series.clock.format(series.clock.later(series.times[-1], horizon))):
            row.append(when)
    bounds = [f"{side}_{level}" for level in LEVELS for side in ("lo", "hi")]
    header += [f"{series.target}_forecast", *bounds]
    for i, row in enumerate(rows):
        row += [f"{frame[column][i]:.6g}" for column in ("forecast", *bounds)]
    table = io.StringIO()
    csv.writer(table, lineterminator="\n").writerows([header, *rows])
    output = args.output or Path(args.model_dir) / FORECAST_CSV
    write_atomic(output, table.getvalue())
    steps = len(series.values)
    last = series.clock.format(series.times[-1:])[0] if series.times is not None else f"step {steps}"
    print(table.getvalue(), end="")
    print(f"Wrote {len(frame)} forecast step(s) after the last row of {args.csv} ({last}) to {output}")


def predict_many(gf, args: argparse.Namespace) -> None:
    """Nixtla's columns: a row per series and future step, unique_id, ds, forecast, lo_80 ... hi_95."""
    frame = gf.predict(args.csv, args.horizon)
    table = frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    output = args.output or Path(args.model_dir) / FORECAST_CSV
    write_atomic(output, table)
    lines = table.splitlines()
    print("\n".join(lines[: SHOWN_ROWS + 1]))
    if len(lines) > SHOWN_ROWS + 1:
        print(f"... ({len(lines) - 1 - SHOWN_ROWS} more rows)")
    series = frame["unique_id"].nunique()
    print(f"Wrote {len(frame)} forecast rows ({series} series x {len(frame) // series} steps) to {output}")


def parse_test_size(text: str) -> float:
    """A fraction of the series (0 < f < 1) or a count of steps (a whole number; 0 only for many series)."""
    if text.isdigit():
        return float(text)
    fraction = number(text)
    if not 0 < fraction < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1 or a count >= 0, got {text!r}")
    return fraction


def method_list(text: str) -> tuple[str, ...]:
    """statsforecast methods separated by commas, or "none"."""
    if text.strip().lower() == "none":
        return ()
    names = tuple(name.strip() for name in text.split(","))
    unknown = [name for name in names if name not in stat_baselines.STAT_METHODS]
    if unknown:
        known = ", ".join(stat_baselines.STAT_METHODS)
        raise argparse.ArgumentTypeError(f"unknown method {unknown[0]!r}: choose from {known}, or none")
    return names


def column_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"must be column names separated by commas, got {text!r}")
    return names


TRAIN_HELP = "train a forecaster on a CSV column and score it against baselines"
TRAIN_DESCRIPTION = """\
Train an LSTM to forecast the column TARGET of CSV H steps ahead. The forecast proper (lstmkit's) is
the best on the validation part of the LSTM, AutoETS, AutoTheta, AutoARIMA (statsforecast: pip install
'lstmkit[stats]') and the mean of the LSTM and the best of those, with 80% and 95% intervals from its
validation errors. It is tested on the end of the series against the LSTM alone, the statistical methods,
naive and seasonal naive, and the report says which won. Writes DIR/model.safetensors, config.json,
metrics.json (rmse, mae, mase of each, in the column's units; interval coverage and MSIS), forecast.png
(forecasts against the actual values on the test part) and loss_curve.png.

The CSV needs a header line. Times come from --time, else from a first column of ISO dates
(1949-01, 1981-01-31, 2010-01-02 13:00), else from year, month, day[, hour] columns; missing times are
inserted. Missing values (empty, NA) are interpolated along time, leading ones dropped; the counts are
reported. Non-numeric feature columns are categories, one-hot encoded. A CSV in Nixtla's long format
(columns unique_id, ds, y; one series) needs no --target.

Many series: a long CSV with several unique_id values (or --id COL), or the M4 competition's wide CSV (a row
per series; its test file with --test-file), trains one LSTM for all of them (lstmkit.GlobalForecaster):
each series' last --test-size steps (default: the horizon; 0: none) are its test part, scored by sMAPE,
MASE and M4's OWA against Naive2, seasonal naive, AutoETS and AutoTheta (--baselines); series_metrics.csv
holds each series' scores.

Season: hourly 24, daily 7 (or 365 when the yearly pattern is the stronger, as for temperatures: a
forecaster compares the two), weekly 52, monthly 12, quarterly 4; --season overrides. Inputs, chosen on
the training part unless given: log when a positive series swings more at higher levels; seasonal
differences when the season is strong (strength >= 0.64) and fits in the window; sin/cos of the position
in the season when it is clear (>= 0.3) but not differenced. Scales are fitted on the training part only.
The model forecasts the changes from the last value; untrained, it is the naive forecast of its inputs."""

TRAIN_EXAMPLES = """\
examples:
  lstmkit forecast train airline-passengers.csv --target Passengers --horizon 1 --test-size 48 --out runs/air
  lstmkit forecast train daily-min-temperatures.csv --target Temp --horizon 7 --out runs/temp
  lstmkit forecast train pollution.csv --target pm2.5 --features DEWP,TEMP,PRES,cbwd,Iws \\
      --horizon 24 --minutes 5 --out runs/pm25"""
TRAIN_TEXTS = (TRAIN_HELP, TRAIN_DESCRIPTION, TRAIN_EXAMPLES)

PREDICT_HELP = "forecast the steps after the end of a CSV with a trained model"
PREDICT_DESCRIPTION = """\
Forecast the H steps after the last row of CSV with the model in DIR (written by 'forecast train').
The CSV needs the training columns (target, time, features) and at least the model's window of rows;
it is cleaned as in training; a statistical method in the forecast is fitted on all of it. Writes step,
time, forecast and the 80% and 95% intervals (lo_80, hi_80, lo_95, hi_95) to a CSV file and prints them.
A model of many series writes a row per series and step: unique_id, ds, forecast, lo_80 ... hi_95."""

PREDICT_EXAMPLES = """\
examples:
  lstmkit forecast predict runs/air airline-passengers.csv               the model's horizon
  lstmkit forecast predict runs/air new-data.csv --horizon 1 --output next.csv"""
PREDICT_TEXTS = (PREDICT_HELP, PREDICT_DESCRIPTION, PREDICT_EXAMPLES)


def add_commands(parser: argparse.ArgumentParser) -> None:
    """`lstmkit forecast train|predict`."""
    actions = actions_of(parser)
    data = add_train_command(actions, Forecaster, train, TRAIN_TEXTS)["data"]
    data.add_argument("csv", type=Path, metavar="CSV", help="the series, one row per time step")
    data.add_argument("--target", metavar="COL", help="the column to forecast (long format: y)")
    data.add_argument(
        "--time", type=column_list, metavar="COLS", help="time column, or year,month,day[,hour]"
    )
    data.add_argument(
        "--features",
        type=column_list,
        default=[],
        metavar="COLS",
        help="extra input columns, comma-separated",
    )
    data.add_argument(
        "--test-size",
        type=parse_test_size,
        metavar="N",
        help="the test part at the end: a fraction or a number of steps (default: 0.2; many series: the "
        "horizon, and 0 trains on the whole of every series)",
    )
    data.add_argument("--id", metavar="COL", help="many series: the series id column (default: unique_id)")
    data.add_argument(
        "--test-file",
        type=Path,
        metavar="FILE",
        help="many series: the test part in its own file, the same series continued (M4's Hourly-test.csv)",
    )
    data.add_argument(
        "--baselines",
        type=method_list,
        metavar="LIST",
        help="many series: the statsforecast methods scored beside (default: AutoETS,AutoTheta, and "
        f"AutoARIMA when every series is at most {ARIMA_SHORT_STEPS} steps); none for no statistical method",
    )

    p = add_command(actions, "predict", Forecaster, ".load(DIR).predict(CSV)", predict, PREDICT_TEXTS)
    p.add_argument("csv", type=Path, metavar="CSV", help="the series up to now, with the training columns")
    p.add_argument(
        "--horizon", type=POSITIVE_INT.parse, metavar="H", help="steps to forecast (default: the model's)"
    )
    p.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help=f"where to write the forecasts (default: DIR/{FORECAST_CSV})",
    )


INSPECT_READS = (
    "a CSV file with the training columns, or numbers separated by commas (the target's values, "
    "oldest first; only for a model without --features or a time-of-season input); the steps "
    "are the last window the model reads to forecast what follows"
)


register(
    Task(
        "forecast",
        "time-series forecasting: train on a CSV column, predict",
        add_commands,
        Forecaster,
        __doc__,
        reads=INSPECT_READS,
    )
)
