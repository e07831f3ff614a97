"""`lstmkit forecast train` on many series, `lstmkit.GlobalForecaster`: one LSTM for every series of a file.

It reads Nixtla's long format (unique_id, ds, y, plus exogenous columns; ds as dates or integer steps) and
the M4 competition's wide one (lstmkit.data.panel). The last TEST_SIZE steps of each series are its test
part (default: one horizon, as in M4; 0: none, to forecast the real future); the last VALIDATION steps
before them stop the training early and calibrate the 80% and 95% intervals (lstmkit.tasks.forecast_many).

``evaluate`` forecasts from every origin of every test part, as do naive, seasonal naive, M4's Naive2 and
statsforecast's AutoETS and AutoTheta (AutoARIMA where every series is short), each fitted on the series'
part before its test part. Per series: sMAPE and MASE (scaled by the in-sample seasonal naive MAE), the
intervals' coverage and MSIS; over the panel the M4 aggregates, the means over series, and

    OWA = (sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2) / 2.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lstmkit import stat_baselines
from lstmkit.baselines import naive_forecast, seasonal_naive_forecast
from lstmkit.data import panel as panels
from lstmkit.data.panel import Panel
from lstmkit.data.series_encoding import Encoding
from lstmkit.data.timeseries import detect_season, seasonal_strength
from lstmkit.errors import InputError, NotFittedError
from lstmkit.files import write_atomic
from lstmkit.models.forecaster import ForecastNetwork
from lstmkit.plots.record import GateRecord
from lstmkit.stat_baselines import naive2_forecast
from lstmkit.tasks.estimator import Estimator
from lstmkit.tasks.forecast import (
    ARIMA_SHORT_STEPS,
    LONG_FORMAT,
    SMALL_DATA,
    SMALL_HIDDEN,
    STRONG_SEASON,
    ForecastConfig,
    asked_horizon,
    default_window,
    source_name,
)
from lstmkit.tasks.forecast_blend import LEVELS, Intervals
from lstmkit.tasks.forecast_many import GlobalModel, fit_global
from lstmkit.train.metrics import coverage, msis, owa, seasonal_scale, smape

LAYOUT = "many"  # config.json's fitted["layout"]: a GlobalForecaster's model directory
PANEL_HIDDEN = 64  # LSTM units with SMALL_DATA training windows or more
STEP_SEASONS = (24, 12, 7, 4, 52)  # integer steps: the season is the candidate most series repeat
SERIES_METRICS_CSV = "series_metrics.csv"
PANEL_PNG = "forecast.png"
SHOWN_SERIES = 6  # drawn in forecast.png
LSTMKIT = "lstmkit"


class GlobalForecaster(Estimator):
    """One LSTM for many series: Nixtla's long format (a row per series and time: ``unique_id, ds, y``,
    plus exogenous columns) or the M4 competition's wide CSV (a row per series). Each series gets its own
    scales; the network is shared.

        gf = lstmkit.GlobalForecaster(horizon=48).fit("Hourly-train.csv", test_data="Hourly-test.csv")
        gf.evaluate()        # sMAPE, MASE, OWA against Naive2, AutoETS, AutoTheta; per series too
        gf.predict()         # a DataFrame: unique_id, ds, forecast, lo_80, hi_80, lo_95, hi_95
        gf.save("runs/m4"); lstmkit.load("runs/m4")

    ``fit`` holds out the last ``test_size`` steps of each series (default: the horizon; 0: none), or
    takes the test part from ``test_data`` (the same series, continued); season, window, log and seasonal
    differencing are chosen from the training parts unless given.
    """

    task = "forecast"
    Config = ForecastConfig
    loss_name = "mean squared error of the scaled changes"
    unit = "windows"

    def fit(
        self,
        data,
        *,
        test_data=None,
        id: str = panels.ID,
        time: str = panels.DS,
        target: str = panels.Y,
        features: list[str] | tuple[str, ...] = (),
        test_size: float | None = None,
        statistical: tuple[str, ...] | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        verbose: bool = True,
        **training,
    ) -> GlobalForecaster:
        """Train on DATA (a CSV path or DataFrame; long or M4 wide) with columns ID, TIME, TARGET and
        FEATURES; the test part is TEST_DATA's (the series continued) or each series' last TEST_SIZE steps
        (a count, a fraction of each series, or 0). STATISTICAL: the statsforecast methods ``evaluate``
        runs beside (default: AutoETS, AutoTheta, and AutoARIMA when every series is short)."""
        self._configure(training, checkpoint_dir, resume)
        cfg = self.config
        self.source = source_name(data)
        self.columns = {"id": id, "time": time, "target": target, "features": list(features)}
        panel, n_train = self._read_split(data, test_data, test_size)
        self.columns["categories"] = panel.series[0].categories
        self.columns["frequency"] = panel.series[0].clock.frequency
        self.panel, self.n_train = panel, n_train
        horizon, shortest = cfg.horizon, min(n_train)
        self.validation = 2 * horizon if shortest >= 6 * horizon else horizon
        room = shortest - self.validation - horizon  # steps before the last training origin of the shortest
        if room < 2:
            name = panel.ids[int(np.argmin(n_train))]
            raise InputError(
                f"{self.source}: series {name!r} has {shortest} steps before its test part, too few for "
                f"horizon {horizon} + validation {self.validation} + a window: use a shorter --horizon, a "
                "smaller --test-size, or leave the series out"
            )
        self.season, self.season_from = self._season(panel, n_train)
        self.log = self._choose_log(panel, n_train)
        self.seasonal_diff = self._choose_seasonal_diff(panel, n_train, room)
        offset = self.season if self.seasonal_diff else 0
        self.window = cfg.window or default_window(self.season, room - offset)
        windows = sum(max(0, n - self.validation - horizon - offset - self.window + 1) for n in n_train)
        self.hidden_size = cfg.hidden_size or (SMALL_HIDDEN if windows < SMALL_DATA else PANEL_HIDDEN)
        batch_size = cfg.batch_size or min(64, max(1, windows // 4))
        self.statistical = tuple(statistical) if statistical is not None else self._default_statistical()
        unknown = [name for name in self.statistical if name not in stat_baselines.STAT_METHODS]
        if unknown:
            raise InputError(
                f"statistical={unknown[0]!r}: not one of {', '.join(stat_baselines.STAT_METHODS)} "
                "(or () for none)"
            )
        if verbose:
            self._describe(windows)
        model = fit_global(
            panel.series,
            n_train,
            horizon,
            self.season,
            cfg,
            window=self.window,
            log=self.log,
            seasonal_diff=self.seasonal_diff,
            hidden_size=self.hidden_size,
            num_layers=cfg.num_layers,
            batch_size=batch_size,
            validation=self.validation,
            names=panel.ids,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            progress="auto" if verbose else "off",
        )
        self.ids, self.encodings, self.intervals = panel.ids, model.encodings, model.intervals
        self.input_size = model.encodings[0].input_size(panel.series[0])
        self._finish_fit(model.network, model.state)
        return self

    # ---- reading -------------------------------------------------------------------------------------------
    def _read(self, data, categories=None) -> Panel:
        """DATA as a Panel: the M4 wide layout, or the long one with the model's columns."""
        if panels.is_m4_wide(data):
            return panels.load_m4_wide(data)
        c = self.columns
        table = panels.as_table(data)
        for name in (c["id"], c["time"], c["target"]):
            if name not in table.header:
                raise InputError(
                    f"{table.path}: no column {name!r} (it has {', '.join(table.header)}); a file of many "
                    "series has a column each for the series id, the time and the value: name them "
                    f"{', '.join(LONG_FORMAT)} or give --id, --time and --target"
                )
        return panels.load_long(table, c["id"], c["time"], c["target"], c["features"], categories)

    def _read_split(self, data, test_data, test_size) -> tuple[Panel, list[int]]:
        """The panel (with TEST_DATA's steps appended to each series) and each series' steps before its
        test part."""
        if test_data is not None:
            if test_size is not None:
                raise InputError("give test_data= (--test-file) or test_size= (--test-size), not both")
            if panels.is_m4_wide(data):
                train, test = panels.load_m4_pair(data, test_data)
            else:
                train = self._read(data)
                test = panels.load_long(
                    panels.as_table(test_data), *self._long_columns(), train.series[0].categories, min_steps=1
                )
                check_same_ids(train, test)
            return join(train, test), [len(s.values) for s in train.series]
        panel = self._read(data)
        horizon = self.config.horizon
        counts = [held_out_steps(test_size, len(s.values), horizon) for s in panel.series]
        for name, one, n_test in zip(panel.ids, panel.series, counts):
            if n_test and n_test < horizon:
                raise InputError(
                    f"{panel.source}: series {name!r}: the test part of {n_test} step(s) is shorter than the "
                    f"horizon {horizon}; give a larger --test-size, or 0 to train on every step"
                )
            if n_test >= len(one.values):
                raise InputError(
                    f"{panel.source}: series {name!r} has {len(one.values)} steps, all of them in the test "
                    f"part of {n_test}; give a smaller --test-size"
                )
        return panel, [len(s.values) - k for s, k in zip(panel.series, counts)]

    def _long_columns(self) -> tuple[str, str, str, list[str]]:
        c = self.columns
        return c["id"], c["time"], c["target"], c["features"]

    # ---- choices -------------------------------------------------------------------------------------------
    def _season(self, panel: Panel, n_train: list[int]) -> tuple[int, str]:
        """--season; else from the frequency (as for one series, on the longest); integer steps: the
        candidate of STEP_SEASONS with the highest median autocorrelation, if it passes M4's seasonality
        test on most series; else none."""
        if self.config.season:
            return self.config.season, "--season"
        frequency = panel.series[0].clock.frequency
        longest = int(np.argmax(n_train))
        if frequency != "steps":
            return detect_season(panel.series[longest].values[: n_train[longest]], frequency)
        trains = [s.values[:n] for s, n in zip(panel.series, n_train)]
        scores = {}
        for season in STEP_SEASONS:
            usable = [t for t in trains if len(t) >= 3 * season]
            if len(usable) * 2 > len(trains):
                tested = np.mean([stat_baselines.is_seasonal(t, season) for t in usable])
                scores[season] = (
                    tested,
                    np.median([stat_baselines.autocorrelation(t, season) for t in usable]),
                )
        seasonal = {s: r for s, (tested, r) in scores.items() if tested > 0.5}
        if not seasonal:
            return 1, "integer steps, no candidate season (24, 12, 7, 4, 52) passes M4's test on most series"
        best = max(seasonal, key=seasonal.get)
        return (
            best,
            f"integer steps, the median autocorrelation is highest at lag {best} ({seasonal[best]:.2f})",
        )

    def _choose_log(self, panel: Panel, n_train: list[int]) -> bool:
        positive = all((s.values[:n] > 0).all() for s, n in zip(panel.series, n_train))
        if self.config.log == "yes" and not positive:
            raise InputError("--log yes needs positive series, but some have values <= 0; use --log no")
        return self.config.log == "yes" or (self.config.log == "auto" and positive)

    def _choose_seasonal_diff(self, panel: Panel, n_train: list[int], room: int) -> bool:
        """yes, no, or (auto) when the median seasonal strength is strong and a season and a window fit."""
        season, choice = self.season, self.config.seasonal_diff
        fits = season > 1 and season + 2 <= room
        if choice == "yes" and not fits:
            raise InputError(
                f"--seasonal-diff yes needs a season ({season}) and a window before the validation part of "
                "every series; use --seasonal-diff no, or a shorter --horizon"
            )
        if choice != "auto":
            return choice == "yes"
        if not fits:
            return False
        strengths = [
            seasonal_strength(np.log(s.values[:n]) if self.log else s.values[:n], season)
            for s, n in zip(panel.series, n_train)
        ]
        return bool(np.median(strengths) >= STRONG_SEASON)

    def _default_statistical(self) -> tuple[str, ...]:
        methods = ("AutoETS", "AutoTheta")
        return (*methods, "AutoARIMA") if max(self.n_train) <= ARIMA_SHORT_STEPS else methods

    def _describe(self, windows: int) -> None:
        panel, cfg = self.panel, self.config
        lengths = [len(s.values) for s in panel.series]
        step = panel.series[0].clock.frequency if not panel.integer_steps else "integer"
        print(
            f"forecast: {self.source}: {len(panel)} series ({panel.id_name}) of "
            f"{min(lengths)}-{max(lengths)} {step} steps."
        )
        for note in panel.notes:
            print(f"  {note}")
        inputs = "log, " if self.log else ""
        inputs += f"seasonal differences (lag {self.season}), " if self.seasonal_diff else ""
        tests = [len(s.values) - n for s, n in zip(panel.series, self.n_train)]
        print(
            f"Season {self.season} ({self.season_from}); window {self.window} steps; inputs: {inputs}scaled "
            f"per series on its training part.\nSplit per series: validation {self.validation}, test "
            f"{min(tests)}-{max(tests)} steps ({windows} training windows over all series).\nModel: LSTM "
            f"{cfg.num_layers} x {self.hidden_size} -> linear {cfg.horizon} step(s), one for all series."
        )

    # ---- use -----------------------------------------------------------------------------------------------
    def _fitted_data(self, method: str) -> tuple[Panel, list[int]]:
        self._check_fitted()
        if getattr(self, "panel", None) is None:
            raise InputError(f"{method}() needs data: this model was loaded, not fitted in this session")
        return self.panel, self.n_train

    def _model_for(self, panel: Panel) -> GlobalModel:
        """The global model with an encoding for each series of PANEL: the trained one for a known id, one
        fitted on the whole series for a new id."""
        known = dict(zip(self.ids, self.encodings))
        encodings = []
        for name, one in zip(panel.ids, panel.series):
            encoding = known.get(name) or Encoding.fit(
                one, len(one.values), self.season, self.log, self.seasonal_diff, False
            )
            if self.log and (one.values <= 0).any():
                raise InputError(
                    f"{panel.source}: series {name!r} has values <= 0, but the model forecasts logarithms "
                    "(it was trained on positive series)"
                )
            if len(one.values) < encoding.offset + self.window:
                raise InputError(
                    f"{panel.source}: series {name!r} has {len(one.values)} steps; the model reads the last "
                    f"{encoding.offset + self.window}: give a longer series, or leave it out"
                )
            encodings.append(encoding)
        return GlobalModel(self._check_fitted(), encodings, self.window, self.season, self.intervals)

    def predict(self, data=None, horizon: int | None = None):
        """A pandas DataFrame with a row per series and future step: unique_id, ds, forecast, lo_80, hi_80,
        lo_95, hi_95, for the HORIZON steps (default: the model's) after the end of each series of DATA
        (default: the data it was fitted on, test part included)."""
        import pandas as pd

        horizon = asked_horizon(horizon, self.config.horizon, self.directory)
        panel = (
            self._fitted_data("predict")[0] if data is None else self._read(data, self.columns["categories"])
        )
        model = self._model_for(panel)
        ends = [np.array([len(s.values) - 1]) for s in panel.series]
        rows = {"unique_id": [], "ds": [], "forecast": []}
        rows.update({f"{side}_{level}": [] for level in LEVELS for side in ("lo", "hi")})
        for i, (one, end, forecast) in enumerate(
            zip(panel.series, ends, model.forecasts(panel.series, ends))
        ):
            bands = model.bands(one, end, forecast)
            rows["unique_id"] += [panel.ids[i]] * horizon
            rows["ds"] += panel.future_ds(i, horizon)
            rows["forecast"] += forecast[0, :horizon].tolist()
            for level, (lo, hi) in bands.items():
                rows[f"lo_{level}"] += lo[0, :horizon].tolist()
                rows[f"hi_{level}"] += hi[0, :horizon].tolist()
        frame = pd.DataFrame(rows)
        if panel.integer_steps:
            frame["ds"] = frame["ds"].astype(int)
        return frame

    def evaluate(self, data=None, *, test_data=None, test_size: float | None = None, verbose: bool = True):
        """sMAPE, MASE, OWA, interval coverage and MSIS of every forecast origin of each series' test part
        (fit's, or DATA's with TEST_DATA or TEST_SIZE as in fit), against naive, seasonal naive, Naive2 and
        the statistical methods; per series in ``series_metrics``."""
        self._check_fitted()
        if data is None:
            panel, n_train = self._fitted_data("evaluate")
        else:
            panel, n_train = self._read_split(data, test_data, test_size)
        horizon, season = self.config.horizon, self.season
        origins = [np.arange(n - 1, len(s.values) - horizon) for s, n in zip(panel.series, n_train)]
        if not all(len(o) for o in origins):
            raise InputError(
                "the test part holds no forecast origin: give a --test-size of at least the horizon"
            )
        model = self._model_for(panel)
        lstm = model.forecasts(panel.series, origins)
        points = {LSTMKIT: lstm, "naive": [], "seasonal_naive": [], "naive2": []}
        bands = {LSTMKIT: [model.bands(s, o, f) for s, o, f in zip(panel.series, origins, lstm)]}
        found_by_series, skipped = [], {}
        for name, one, n, local in zip(
            panel.ids, panel.series, n_train, progress(origins, self.statistical, verbose)
        ):
            values = one.values
            points["naive"].append(naive_forecast(values, local, horizon))
            points["seasonal_naive"].append(seasonal_naive_forecast(values, local, horizon, max(season, 1)))
            points["naive2"].append(
                np.stack([naive2_forecast(values[: o + 1], horizon, season) for o in local])
            )
            found, reasons = stat_baselines.statistical_forecasts(
                values, n, local, horizon, season, self.statistical
            )
            found_by_series.append(found)
            for reason in reasons:
                skipped.setdefault(reason.split()[0], []).append(f"series {name!r}: {reason}")
        notes = []
        for method in self.statistical:
            ran = sum(method in found for found in found_by_series)
            if ran == len(found_by_series):
                points[method] = [found[method].point for found in found_by_series]
                bands[method] = [found[method].intervals for found in found_by_series]
            elif method in skipped:
                first = skipped[method][0]
                notes.append(f"{method} left out: it ran on {ran} of {len(panel)} series (first: {first})")
        if self.statistical and not stat_baselines.have_statsforecast():
            notes = [f"no statistical baselines: {stat_baselines.MISSING}"]
        elif "AutoARIMA" not in self.statistical and max(n_train) > ARIMA_SHORT_STEPS:
            notes.append(
                f"AutoARIMA not run: on series longer than {ARIMA_SHORT_STEPS} steps its search takes "
                "minutes each"
            )
        per_series = series_scores(panel, n_train, origins, points, bands, season)
        table = aggregate(per_series, list(points), list(bands))
        winner = {key: min(table, key=lambda name: table[name][key]) for key in ("owa", "smape", "mase")}
        banded = [name for name in table if "intervals" in table[name]]
        winner["msis"] = min(banded, key=lambda name: table[name]["intervals"]["95"]["msis"])
        self.series_metrics, self.evaluation = per_series, (panel, origins, points, bands)
        return self._record(
            {
                **table[LSTMKIT],
                "baselines": {name: s for name, s in table.items() if name != LSTMKIT},
                "baseline_notes": notes,
                "winner": winner,
                "series": len(panel),
                "horizon": horizon,
                "season": season,
                "season_from": self.season_from,
                "window": self.window,
                "validation_steps": self.validation,
                "test_steps": int(sum(len(s.values) - n for s, n in zip(panel.series, n_train))),
                "forecast_origins": int(sum(len(o) for o in origins)),
                "encoding": {"log": self.log, "seasonal_diff": self.seasonal_diff},
                "data_notes": panel.notes,
            }
        )

    @property
    def test_steps(self) -> int:
        """The steps held out for evaluate over all series of the fitted data (0 with test_size=0)."""
        panel, n_train = self._fitted_data("test_steps")
        return int(sum(len(s.values) - n for s, n in zip(panel.series, n_train)))

    def record_fit(self) -> dict:
        """The metrics of a fit without a test part (test_size=0): what was chosen, the validation loss."""
        panel, _ = self._fitted_data("record_fit")
        return self._record(
            {
                "series": len(panel),
                "horizon": self.config.horizon,
                "season": self.season,
                "season_from": self.season_from,
                "window": self.window,
                "validation_steps": self.validation,
                "validation_loss": self.training_state.best,
                "test_steps": 0,
                "encoding": {"log": self.log, "seasonal_diff": self.seasonal_diff},
                "data_notes": panel.notes,
            }
        )

    def score_table(self) -> str:
        """The last evaluation's M4 aggregates as a table, the baselines beside the model, and the winner."""
        if self.metrics is None:
            raise NotFittedError("no metrics yet: call evaluate() first")
        m = self.metrics
        rows = {LSTMKIT: {k: m[k] for k in ("smape", "mase", "owa", "intervals")}, **m["baselines"]}
        lines = [
            f"Test part: {m['series']} series, {m['forecast_origins']} forecast origins x {m['horizon']} "
            f"step(s); means over series (M4):",
            f"  {'':16}{'sMAPE':>8}{'MASE':>8}{'OWA':>8}{'cover 80%':>11}{'cover 95%':>11}{'MSIS':>8}",
        ]
        for name, s in rows.items():
            row = f"  {name:16}{s['smape']:8.3f}{s['mase']:8.3f}{s['owa']:8.3f}"
            if s.get("intervals"):
                i = s["intervals"]
                row += f"{i['80']['coverage']:11.1%}{i['95']['coverage']:11.1%}{i['95']['msis']:8.2f}"
            lines.append(row)
        w = m["winner"]
        lines.append(
            f"Best on the test part: {w['owa']} by OWA, {w['smape']} by sMAPE, {w['mase']} by MASE; "
            f"intervals: {w['msis']} by MSIS (95%)"
        )
        lines += [f"  {note}" for note in m["baseline_notes"]]
        return "\n".join(lines)

    @torch.no_grad()
    def gates(self, data=None, series: str | None = None) -> GateRecord:
        """The gates while the model reads the last window of one series of DATA (default: the fitted
        data): SERIES names it (default: the first)."""
        panel = (
            self._fitted_data("gates")[0] if data is None else self._read(data, self.columns["categories"])
        )
        name = series if series is not None else panel.ids[0]
        if name not in panel.ids:
            raise InputError(f"no series {name!r} in {panel.source}; it has {panels.shown(panel.ids)}")
        i = panel.ids.index(name)
        one = panel.series[i]
        model = self._model_for(
            Panel(panel.source, [name], [one], panel.id_name, panel.time_name, False, [], [])
        )
        steps, window = len(one.values), self.window
        forecast = model.forecasts([one], [np.array([steps - 1])])[0][0]
        values = one.values[steps - window :]
        ahead = panel.future_ds(i, len(forecast))
        return GateRecord.from_trace(
            model.network.gate_trace(model.encodings[0].inputs(one)[steps - window :]),
            False,
            task=self.task,
            title=f"global forecaster: the last {window} steps of series {name!r}",
            tokens=[f"{v:.4g}" for v in values],
            token_kind="value",
            summary="forecast of what follows: "
            + ", ".join(f"{t}: {v:.4g}" for t, v in zip(ahead, forecast)),
            notes=[],
            series=values.tolist(),
            series_name=f"{name}",
        )

    def _plots(self, directory: Path) -> list[Path]:
        if getattr(self, "evaluation", None) is None:
            return []
        from lstmkit.plots.plots import plot_panel_forecasts  # matplotlib only when a picture is drawn

        panel, origins, points, bands = self.evaluation
        table = io.StringIO()
        writer = csv.writer(table, lineterminator="\n")
        names = list(points)
        writer.writerow(["unique_id", *(f"{name}_{key}" for name in names for key in ("smape", "mase"))])
        for name, scores in self.series_metrics.items():
            writer.writerow([name, *(f"{scores[n][k]:.6g}" for n in names for k in ("smape", "mase"))])
        write_atomic(directory / SERIES_METRICS_CSV, table.getvalue())
        path = directory / PANEL_PNG
        shown = range(min(SHOWN_SERIES, len(panel)))
        plot_panel_forecasts(
            path,
            [panel.ids[i] for i in shown],
            [panel.series[i].values for i in shown],
            [origins[i][0] for i in shown],
            [points[LSTMKIT][i][0] for i in shown],
            [bands[LSTMKIT][i][95][0][0] for i in shown],
            [bands[LSTMKIT][i][95][1][0] for i in shown],
            title=f"{Path(self.source).name}: the first forecast of each test part, with its 95% interval",
        )
        return [directory / SERIES_METRICS_CSV, path]

    # ---- save and load -------------------------------------------------------------------------------------
    def _describe_fitted(self) -> str:
        layers = self.config.num_layers
        return f"{len(self.ids)} series, window {self.window}, LSTM {layers} x {self.hidden_size}"

    def _fitted_state(self) -> dict:
        """What fit chose and learned, the encoding of each series; not the series (predict reads them)."""
        return {
            "layout": LAYOUT,
            **self.columns,
            "ids": self.ids,
            "encodings": [e.to_dict() for e in self.encodings],
            "intervals": self.intervals.to_dict(),
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "window": self.window,
            "season": self.season,
            "season_from": self.season_from,
            "log": self.log,
            "seasonal_diff": self.seasonal_diff,
            "validation": self.validation,
            "statistical": list(self.statistical),
            "source": self.source,
        }

    def _restore_fitted(self, state: dict) -> None:
        if state.get("layout") != LAYOUT:
            raise InputError(
                f"{self.directory}: holds a single-series forecaster; open it with lstmkit.Forecaster.load"
            )
        keys = ("id", "time", "target", "features", "categories", "frequency")
        self.columns = {key: state[key] for key in keys}
        self.ids, self.encodings = state["ids"], [Encoding.from_dict(e) for e in state["encodings"]]
        self.intervals = Intervals.from_dict(state["intervals"])
        for key in ("input_size", "hidden_size", "window", "season", "season_from", "log", "seasonal_diff"):
            setattr(self, key, state[key])
        self.validation, self.statistical, self.source = (
            state["validation"],
            tuple(state["statistical"]),
            state["source"],
        )
        self.panel = None  # predict and evaluate read the data again

    def _build_network(self) -> ForecastNetwork:
        return ForecastNetwork(self.input_size, self.config.horizon, self.hidden_size, self.config.num_layers)

    def _finish_fit(self, network, state) -> None:
        super()._finish_fit(network, state)
        self.evaluation = None


# ---- pieces ------------------------------------------------------------------------------------------
def held_out_steps(test_size: float | None, steps: int, horizon: int) -> int:
    """A series' test steps: the horizon (None), none (0), a fraction of its steps, or a count."""
    if test_size is None:
        return horizon
    return round(test_size * steps) if 0 < test_size < 1 else int(test_size)


def join(train: Panel, test: Panel) -> Panel:
    """Each series of TRAIN continued by its steps in TEST (same ids, same order)."""
    series = [
        replace(
            first,
            values=np.concatenate([first.values, second.values]),
            features=np.concatenate([first.features, second.features]),
            times=None if first.times is None else np.concatenate([first.times, second.times]),
        )
        for first, second in zip(train.series, test.series)
    ]
    notes = train.notes + [f"test file: {note}" for note in test.notes]
    return replace(train, series=series, notes=notes)


def check_same_ids(train: Panel, test: Panel) -> None:
    if train.ids != test.ids:
        missing = [name for name in train.ids if name not in test.ids]
        extra = [name for name in test.ids if name not in train.ids]
        what = f"lacks {panels.shown(missing)}" if missing else f"adds {panels.shown(extra)}"
        if not missing and not extra:
            what = "holds them in another order"
        raise InputError(
            f"{test.source}: the test file {what}; it must hold the training file's series, in order"
        )


def progress(origins: list[np.ndarray], methods: tuple[str, ...], verbose: bool):
    """The series' origins, with a progress bar while the statistical methods are fitted."""
    if not (verbose and methods and stat_baselines.have_statsforecast()):
        return origins
    from tqdm.auto import tqdm

    return tqdm(origins, desc=f"baselines ({', '.join(methods)})", unit="series", leave=False)


def series_scores(panel, n_train, origins, points, bands, season) -> dict[str, dict[str, dict]]:
    """Per series and method: sMAPE and MASE over its test origins (and coverage and MSIS of intervals)."""
    horizon = points[LSTMKIT][0].shape[1]
    found = {}
    for i, (name, one, n, local) in enumerate(zip(panel.ids, panel.series, n_train, origins)):
        actual = one.values[local[:, None] + np.arange(1, horizon + 1)]  # (O, H)
        train = one.values[:n]
        scale = seasonal_scale(train, max(season, 1))
        scores = {}
        for method, forecasts in points.items():
            forecast = forecasts[i]
            scores[method] = {
                "smape": smape(forecast, actual),
                "mase": float(np.mean(np.abs(forecast - actual)) / scale),
            }
            if method in bands:
                scores[method]["intervals"] = {
                    str(level): {
                        "coverage": coverage(lo, hi, actual),
                        "msis": msis(lo, hi, actual, train, max(season, 1), alpha=1 - level / 100),
                    }
                    for level, (lo, hi) in bands[method][i].items()
                }
        found[name] = scores
    return found


def aggregate(per_series: dict, methods: list[str], with_bands: list[str]) -> dict[str, dict]:
    """The means over series of each method's sMAPE, MASE (and interval scores), and its OWA."""
    table = {}
    for method in methods:
        rows = [scores[method] for scores in per_series.values()]
        table[method] = {key: float(np.mean([r[key] for r in rows])) for key in ("smape", "mase")}
        if method in with_bands:
            table[method]["intervals"] = {
                str(level): {
                    key: float(np.mean([r["intervals"][str(level)][key] for r in rows]))
                    for key in ("coverage", "msis")
                }
                for level in LEVELS
            }
    base = table["naive2"]
    for scores in table.values():
        scores["owa"] = owa(scores["smape"], scores["mase"], base["smape"], base["mase"])
    return table
