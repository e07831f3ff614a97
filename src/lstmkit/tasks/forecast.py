"""`lstmkit forecast`: forecast a column of a CSV file H steps ahead. train CSV, predict DIR CSV.

The series is split in time: the test part at the end, a validation part (for early stopping) at the end
of what remains, the training part before it. An LSTM reads a window of W steps and emits the next H
values at once. It is scored on every forecast origin of the test part against two baselines, naive (the
last value) and seasonal naive (the value one season before), in RMSE, MAE and MASE.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lstmkit.data.timeseries import (
    Series,
    detect_season,
    load_series,
    seasonal_strength,
    spread_grows_with_level,
)
from lstmkit.errors import InputError
from lstmkit.files import write_atomic
from lstmkit.models.forecaster import (
    Encoding,
    Forecaster,
    gather_changes,
    gather_windows,
    naive_forecast,
    seasonal_naive_forecast,
)
from lstmkit.tasks.common import (
    add_training_arguments,
    number,
    positive_int,
    prepare_out_dir,
    train_config,
    write_report,
)
from lstmkit.train import distributed
from lstmkit.train.checkpoint import load_model, load_weights
from lstmkit.train.loop import TrainConfig, Trainer
from lstmkit.train.metrics import mae, mase, rmse

TASK = "forecast"
LOSS_NAME = "mean squared error of the scaled changes"
DEFAULTS = TrainConfig(epochs=300, minutes=3.0, lr=1e-3, patience=30, schedule="constant", grad_clip=1.0)
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

    The training loss scores the forecasts made at every step of each window (see `Forecaster`); the
    validation loss only the last step's, the forecast proper.
    """

    def __init__(
        self, model: Forecaster, inputs, levels, split: Split, window: int, batch_size: int, seed: int
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
def count_test_steps(test_size: float, steps: int, csv_path: Path) -> int:
    """--test-size as a count of steps: a fraction of the series (0 < f < 1) or a whole number."""
    count = round(test_size * steps) if test_size < 1 else int(test_size)
    if not 1 <= count < steps:
        raise InputError(
            f"{csv_path}: --test-size {test_size:g} leaves {count} of {steps} steps for testing; give a "
            f"fraction between 0 and 1 or a count from 1 to {steps - 1}"
        )
    return count


def default_window(season: int, available: int) -> int:
    """Three seasons (two if three are longer than LONGEST_WINDOW; half of it for longer seasons, which
    then enter as sin/cos inputs; 16 steps without a season), at most half of the ``available`` steps."""
    fitting = [k * season for k in (3, 2) if k * season <= LONGEST_WINDOW]
    window = 16 if season <= 1 else fitting[0] if fitting else LONGEST_WINDOW // 2
    return max(1, min(window, available // 2))


def choose_encoding(args, series: Series, n_train: int, season: int, window: int) -> Encoding:
    """log, seasonal differencing and season inputs: from the flags, or (auto) from the training part."""
    train = series.values[:n_train]
    log = args.log == "yes" or (args.log == "auto" and spread_grows_with_level(train, season))
    if log and (train <= 0).any():
        raise InputError(
            f"--log yes needs a positive series, but {series.target} has values <= 0; use --log no"
        )
    strength = seasonal_strength(np.log(train) if log else train, season)
    seasonal_diff = args.seasonal_diff == "yes" or (
        args.seasonal_diff == "auto" and strength >= STRONG_SEASON and season <= window
    )
    season_inputs = season > 1 and not seasonal_diff and strength >= CLEAR_SEASON
    return Encoding.fit(series, n_train, season, log, seasonal_diff, season_inputs)


def split_series(
    series: Series, n_test: int, horizon: int, window: int, encoding: Encoding, csv_path
) -> Split:
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
            f"{csv_path}: {steps} steps are too few for window {window}{season} + horizon {horizon} + "
            f"validation {n_validation} + test {n_test}: need at least {need}; use a smaller --window, "
            "--horizon or --test-size, or a longer series"
        )
    validation = torch.arange(max(n_train - n_validation - 1, first), n_train - horizon)
    return Split(train, validation, torch.arange(n_train - 1, steps - horizon), n_train, n_validation)


# ---- train ---------------------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> None:
    started = time.monotonic()
    series = load_series(args.csv, args.target, args.time, args.features)
    steps = len(series.values)
    n_test = count_test_steps(args.test_size, steps, args.csv)
    n_train = steps - n_test
    if args.season and args.season >= n_train:
        raise InputError(
            f"--season {args.season} is out of range: {args.csv} has {n_train} steps before the test part; "
            f"give a season of at most {n_train - 1}, or leave --season out to detect it"
        )
    season, reason = (
        (args.season, "--season")
        if args.season
        else detect_season(series.values[:n_train], series.clock.frequency)
    )
    window = args.window or default_window(season, n_train - season)
    encoding = choose_encoding(args, series, n_train, season, window)
    split = split_series(series, n_test, args.horizon, window, encoding, args.csv)
    out_dir = prepare_out_dir(args.out)
    config = train_config(args)
    torch.manual_seed(config.seed)
    hidden_size = args.hidden_size or (SMALL_HIDDEN if len(split.train) < SMALL_DATA else LARGE_HIDDEN)
    batch_size = args.batch_size or min(32, max(1, len(split.train) // 4))
    model = Forecaster(encoding.input_size(series), args.horizon, hidden_size, args.layers)
    describe_run(args, series, split, season, reason, window, encoding, model)

    inputs, levels = encoding.inputs(series), encoding.scaled_levels(series.values)  # (N, C), (N,)
    job = ForecastJob(model, inputs, levels, split, window, batch_size, config.seed)
    state = Trainer(job, config, out_dir, unit="windows").fit(resume=args.resume)

    origins, forecasts, scores = evaluate(model, encoding, series, split, window, season, args.horizon)
    model_config = {
        "input_size": encoding.input_size(series),
        "horizon": args.horizon,
        "hidden_size": hidden_size,
        "num_layers": args.layers,
        "window": window,
        "target": series.target,
        "time": series.time_name.split("+") if series.times is not None else [],
        "features": args.features,
        "categories": series.categories,
        "frequency": series.clock.frequency,
        "encoding": encoding.to_dict(),
    }
    metrics = {
        **scores["LSTM"],
        "baselines": {name: scores[name] for name in ("naive", "seasonal_naive")},
        "horizon": args.horizon,
        "season": season,
        "season_from": reason,
        "window": window,
        "series_steps": steps,
        "train_steps": n_train - split.n_validation,
        "validation_steps": split.n_validation,
        "test_steps": n_test,
        "forecast_origins": len(origins),
        "encoding": encoding.to_dict(),
        "missing_values": series.missing,
        "data_notes": series.notes,
    }
    write_report(out_dir, TASK, model, model_config, metrics, state, config, started, LOSS_NAME)
    if distributed.is_main():
        plot(out_dir / FORECAST_PNG, args, series, origins, forecasts, scores, season, n_test)
    print(f"Stopped: {state.stopped}; the weights of the best validation (step {state.best_step}) are kept.")
    print(score_table(scores, len(origins), args.horizon))
    print(f"Wrote {out_dir}/model.safetensors, config.json, metrics.json, loss_curve.png and {FORECAST_PNG}.")
    print(f"Forecast beyond the data with: lstmkit forecast predict {out_dir} {args.csv}")


def evaluate(model, encoding: Encoding, series: Series, split: Split, window: int, season: int, horizon: int):
    """The test part's forecast origins (O,), each method's forecasts (O, H) and scores."""
    values, origins = series.values, split.test.numpy()
    actual = values[origins[:, None] + np.arange(1, horizon + 1)]  # (O, H)
    forecasts = {
        "LSTM": encoding.decode(values, origins, model.predict(encoding.inputs(series), split.test, window)),
        "naive": naive_forecast(values, origins, horizon),
        "seasonal_naive": seasonal_naive_forecast(values, origins, horizon, season),
    }
    scores = {name: score(f, actual, values[: split.n_train], season) for name, f in forecasts.items()}
    return origins, forecasts, scores


def plot(path: Path, args, series: Series, origins, forecasts, scores, season: int, n_test: int) -> None:
    from lstmkit.inspect.plots import plot_forecast  # matplotlib only when a report is written

    step = STEP_NAMES.get(series.clock.frequency, "step")
    plot_forecast(
        path,
        series.times if series.times is not None else np.arange(len(series.values)),
        series.values,
        origins,
        forecasts,
        {name: s["mae"] for name, s in scores.items()},
        context=min(max(2 * season, 2 * args.horizon), n_test // 2),
        time_label=time_label(series),
        value_label=series.target,
        title=f"{Path(args.csv).name}: {series.target} forecast {plural(args.horizon, step)} ahead; "
        f"test part: the last {plural(n_test, step)}",
        step_name=step,
    )


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def time_label(series: Series) -> str:
    if series.times is None:
        return "step (row of the CSV)"
    columns = series.time_name.split("+")
    name = columns[0] if len(columns) == 1 else f"time from {', '.join(columns)}"
    return f"{name} ({series.clock.frequency})"


def score(forecast: np.ndarray, actual: np.ndarray, train: np.ndarray, season: int) -> dict[str, float]:
    """RMSE, MAE and MASE (scaled by the in-sample seasonal naive MAE of the training part)."""
    f, a, t = (torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) for v in (forecast, actual, train))
    return {"rmse": rmse(f, a), "mae": mae(f, a), "mase": mase(f, a, t, season)}


def score_table(scores: dict[str, dict[str, float]], origins: int, horizon: int) -> str:
    lines = [f"Test part: {origins} forecast origins x {horizon} step(s), in the series' units:"]
    lines.append(f"  {'':16}{'RMSE':>10}{'MAE':>10}{'MASE':>8}")
    for name, s in scores.items():
        lines.append(f"  {name:16}{s['rmse']:#10.4g}{s['mae']:#10.4g}{s['mase']:8.3f}")
    return "\n".join(lines)


def describe_run(args, series: Series, split: Split, season, reason, window, encoding: Encoding, model):
    span = ""
    if series.times is not None:
        first, last = series.clock.format(series.times[[0, -1]])
        span = f" from {first} to {last}"
    print(
        f"forecast: {args.csv}: {len(series.values)} {series.clock.frequency} steps of {series.target}{span}."
    )
    for note in series.notes:
        print(f"  {note}")
    if series.feature_names:
        print(f"  features: {', '.join(series.feature_names)}")
    steps = "log, " if encoding.log else ""
    steps += f"seasonal differences (lag {season}), " if encoding.seasonal_diff else ""
    steps += "the position in the season (sin/cos), " if encoding.season_inputs else ""
    print(
        f"Season {season} ({reason}); window {window} steps; inputs: {steps}scaled on the training part.\n"
        f"Split: train {split.n_train - split.n_validation}, validation {split.n_validation}, test "
        f"{len(series.values) - split.n_train} steps ({len(split.train)} training windows).\n"
        f"Model: LSTM {model.lstm.num_layers} x {model.lstm.hidden_size} -> linear {args.horizon} step(s), "
        f"{sum(p.numel() for p in model.parameters()):,} parameters."
    )


# ---- predict -------------------------------------------------------------------------------------------
def predict(args: argparse.Namespace) -> None:
    config, tensors = load_model(args.model_dir, TASK)
    trained = config["horizon"]
    horizon = args.horizon or trained
    if horizon > trained:
        raise InputError(
            f"--horizon {horizon} is out of range: the model in {args.model_dir} forecasts {trained} "
            f"step(s); ask for 1 to {trained}, or train again with --horizon {horizon}"
        )
    series = load_series(
        args.csv, config["target"], config["time"] or [], config["features"], config["categories"]
    )
    encoding, window = Encoding.from_dict(config["encoding"]), config["window"]
    steps = len(series.values)
    if encoding.log and (series.values <= 0).any():
        raise InputError(
            f"{args.csv}: {series.target} has values <= 0, but the model forecasts its logarithm (it was "
            "trained on a positive series); check the column"
        )
    if steps < encoding.offset + window:
        raise InputError(
            f"{args.csv}: {steps} steps are too few: the model reads the last {window}"
            f"{f' + {encoding.offset} (one season)' if encoding.offset else ''}; give a longer series"
        )
    model = Forecaster(config["input_size"], trained, config["hidden_size"], config["num_layers"])
    load_weights(model, tensors, args.model_dir)
    origin = np.array([steps - 1])
    outputs = model.predict(encoding.inputs(series), torch.from_numpy(origin), window)[:, :horizon]
    forecast = encoding.decode(series.values, origin, outputs)[0]  # (H,)
    write_forecast_csv(args, series, forecast)


def write_forecast_csv(args: argparse.Namespace, series: Series, forecast: np.ndarray) -> None:
    """The forecasts, one row per step: step, time (when the series has times), value; also printed."""
    steps, horizon = len(series.values), len(forecast)
    header, rows = ["step"], [[k] for k in range(1, horizon + 1)]
    if series.times is not None:
        header.append(series.time_name if "+" not in series.time_name else "time")
        for row, when in zip(rows, series.clock.format(series.clock.later(series.times[-1], horizon))):
            row.append(when)
    header.append(f"{series.target}_forecast")
    for row, value in zip(rows, forecast):
        row.append(f"{value:.6g}")
    table = io.StringIO()
    csv.writer(table, lineterminator="\n").writerows([header, *rows])
    output = args.output or Path(args.model_dir) / FORECAST_CSV
    write_atomic(output, table.getvalue())
    last = series.clock.format(series.times[-1:])[0] if series.times is not None else f"step {steps}"
    print(table.getvalue(), end="")
    print(f"Wrote {horizon} forecast step(s) after the last row of {args.csv} ({last}) to {output}")


# ---- command line --------------------------------------------------------------------------------------
def parse_test_size(text: str) -> float:
    """A fraction of the series (0 < f < 1) or a count of steps (a whole number >= 1)."""
    if text.isdigit() and int(text) >= 1:
        return float(text)
    fraction = number(text)
    if not 0 < fraction < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1 or a count >= 1, got {text!r}")
    return fraction


def column_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"must be column names separated by commas, got {text!r}")
    return names


TRAIN_DESCRIPTION = """\
Train an LSTM to forecast the column TARGET of CSV H steps ahead, test it on the end of the series
against the naive and seasonal naive forecasts, and write DIR/model.safetensors, config.json,
metrics.json (rmse, mae, mase and the same for the baselines, in the column's units), forecast.png
(forecasts against the actual values on the test part) and loss_curve.png.

The CSV needs a header line. Times come from --time, else from a first column of ISO dates
(1949-01, 1981-01-31, 2010-01-02 13:00), else from year, month, day[, hour] columns; missing times are
inserted. Missing values (empty, NA) are interpolated along time, leading ones dropped; the counts are
reported. Non-numeric feature columns are categories, one-hot encoded.

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

PREDICT_DESCRIPTION = """\
Forecast the H steps after the last row of CSV with the model in DIR (written by 'forecast train').
The CSV needs the training columns (target, time, features) and at least the model's window of rows;
it is cleaned as in training. Writes step, time and forecast to a CSV file and prints them."""

PREDICT_EXAMPLES = """\
examples:
  lstmkit forecast predict runs/air airline-passengers.csv               the model's horizon
  lstmkit forecast predict runs/air new-data.csv --horizon 1 --output next.csv"""


def add_commands(commands) -> None:
    """Register `lstmkit forecast train|predict`."""
    forecast = commands.add_parser(
        "forecast",
        help="time-series forecasting: train on a CSV column, predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = forecast.add_subparsers(title="commands", dest="forecast_command", metavar="COMMAND", required=True)
    formatter = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser(
        "train",
        help="train a forecaster on a CSV column and score it against baselines",
        description=TRAIN_DESCRIPTION,
        epilog=TRAIN_EXAMPLES,
        formatter_class=formatter,
    )
    p.add_argument("csv", type=Path, metavar="CSV", help="the series, one row per time step")
    data = p.add_argument_group("data")
    data.add_argument("--target", required=True, metavar="COL", help="the column to forecast")
    data.add_argument("--horizon", required=True, type=positive_int, metavar="H", help="steps to forecast")
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
        default=0.2,
        metavar="N",
        help="the test part at the end: a fraction or a number of steps (default: 0.2)",
    )
    data.add_argument(
        "--season", type=positive_int, metavar="S", help="season length in steps (default: detected)"
    )
    data.add_argument(
        "--window", type=positive_int, metavar="W", help="steps the model reads (default: 2-3 seasons)"
    )
    data.add_argument(
        "--log", choices=["auto", "yes", "no"], default="auto", help="log-transform (default: auto)"
    )
    data.add_argument(
        "--seasonal-diff",
        choices=["auto", "yes", "no"],
        default="auto",
        help="feed differences from one season before (default: auto)",
    )
    model = p.add_argument_group("model")
    model.add_argument(
        "--hidden-size",
        type=positive_int,
        metavar="N",
        help=f"LSTM units (default: {SMALL_HIDDEN} below {SMALL_DATA} training windows, else {LARGE_HIDDEN})",
    )
    model.add_argument(
        "--layers",
        type=positive_int,
        default=1,
        metavar="N",
        help="stacked LSTM layers (default: %(default)s)",
    )
    model.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="windows per optimizer step (default: 32, fewer when there are under 128 windows)",
    )
    add_training_arguments(p, DEFAULTS)
    p.set_defaults(run=train)

    p = sub.add_parser(
        "predict",
        help="forecast the steps after the end of a CSV with a trained model",
        description=PREDICT_DESCRIPTION,
        epilog=PREDICT_EXAMPLES,
        formatter_class=formatter,
    )
    p.add_argument("model_dir", type=Path, metavar="DIR", help="the --out directory of 'forecast train'")
    p.add_argument("csv", type=Path, metavar="CSV", help="the series up to now, with the training columns")
    p.add_argument(
        "--horizon", type=positive_int, metavar="H", help="steps to forecast (default: the model's)"
    )
    p.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help=f"where to write the forecasts (default: DIR/{FORECAST_CSV})",
    )
    p.set_defaults(run=predict)
