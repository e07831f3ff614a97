"""Forecasting: windows, the encoding and its scales, baselines and MASE by hand, the command end to end."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit import datasets
from lstmkit.baselines import naive_forecast, seasonal_naive_forecast
from lstmkit.cli import main
from lstmkit.data.series_encoding import Encoding, gather_changes, gather_windows
from lstmkit.data.timeseries import STEPLESS, Clock, Series
from lstmkit.models.forecaster import ForecastNetwork
from lstmkit.tasks.forecast import ForecastJob, Split, score


def airline() -> Path:
    return datasets.path("airline-passengers.csv")


def make_series(values, features=None, clock: Clock = STEPLESS) -> Series:
    values = np.asarray(values, dtype=np.float64)
    features = np.zeros((len(values), 0)) if features is None else np.asarray(features, dtype=np.float64)
    names = [f"x{i}" for i in range(features.shape[1])]
    return Series("y", values, features, names, len(names), {}, times=None, clock=clock, time_name="step")


def test_windows_and_targets_against_a_hand_built_example():
    inputs = torch.tensor([[0.0, 10], [1, 11], [2, 12], [3, 13], [4, 14], [5, 15]])  # (N=6, C=2)
    origins = torch.tensor([2, 3])
    windows = gather_windows(inputs, origins, window=3)  # steps 0..2 and 1..3
    assert windows.tolist() == [[[0, 10], [1, 11], [2, 12]], [[1, 11], [2, 12], [3, 13]]]
    levels = torch.tensor([5.0, 7, 4, 9, 1, 3])
    assert gather_changes(levels, origins, horizon=2).tolist() == [[5, -3], [-8, -6]]  # 9-4, 1-4; 1-9, 3-9
    steps = torch.tensor([[1, 2], [3, 4]])  # any shape of origins: (2, 2) -> (2, 2, 1)
    assert gather_changes(levels, steps, horizon=1).tolist() == [[[-3], [5]], [[-8], [2]]]


def test_predict_is_the_last_step_of_the_full_forward_in_batches():
    torch.manual_seed(0)
    model = ForecastNetwork(input_size=3, horizon=4, hidden_size=6)
    torch.nn.init.normal_(model.head.weight)  # (it starts at zero: every forecast would be 0)
    inputs, origins = torch.randn(40, 3), torch.tensor([9, 30, 12, 39, 20])
    with torch.no_grad():
        expected = model(gather_windows(inputs, origins, window=8))[:, -1]  # (5, 4)
    torch.testing.assert_close(model.predict(inputs, origins, window=8, batch_size=2), expected)


def test_training_loss_scores_every_step_after_the_warm_up_against_its_own_targets():
    """The job's table of every step's targets gives the same loss as gathering them per window."""
    torch.manual_seed(0)
    window, horizon = 8, 3
    model = ForecastNetwork(input_size=2, horizon=horizon, hidden_size=5)
    torch.nn.init.normal_(model.head.weight)
    inputs, levels = torch.randn(60, 2), torch.randn(60)
    split = Split(torch.arange(7, 50), torch.arange(50, 57), torch.arange(57, 57), 60, 7)
    job = ForecastJob(model, inputs, levels, split, window, batch_size=4, seed=0)
    batch = torch.tensor([7, 23, 49, 31])
    loss, items = job.loss(batch)
    outputs = model(gather_windows(inputs, batch, window))  # (4, 8, 3)
    steps = batch[:, None] + torch.arange(1 - window, 1)  # (4, 8): each step's own origin
    targets = gather_changes(levels, steps, horizon)  # (4, 8, 3)
    warm_up = window // 4
    expected = ((outputs[:, warm_up:] - targets[:, warm_up:]) ** 2).mean()
    assert items == 4
    torch.testing.assert_close(loss, expected)


def test_scales_are_fitted_on_the_training_part_only():
    train = [1.0, 3, 2, 6, 4, 8]
    calm = make_series(train + [7, 9, 8], features=[[v] for v in range(9)])
    wild = make_series(train + [700, 900, 800], features=[[v] for v in range(6)] + [[1e6]] * 3)
    fitted = [
        Encoding.fit(s, 6, season=2, log=False, seasonal_diff=True, season_inputs=False) for s in (calm, wild)
    ]
    assert fitted[0] == fitted[1]  # the test part differs wildly; the scales do not
    differences = np.array([1.0, 3, 2, 2])  # y[t] - y[t-2] on the training part
    assert fitted[0].u_mean == pytest.approx(differences.mean())
    assert fitted[0].u_scale == pytest.approx(differences.std())
    assert fitted[0].x_mean == pytest.approx((2.5,)) and fitted[0].x_scale == pytest.approx(
        (np.std(range(6)),)
    )


def test_decoding_true_changes_gives_back_the_series():
    rng = np.random.default_rng(0)
    steps = np.arange(60)
    values = (100 + steps) * (1 + 0.2 * np.sin(2 * np.pi * steps / 4)) * np.exp(rng.normal(0, 0.01, 60))
    series = make_series(values)
    encoding = Encoding.fit(series, 40, season=4, log=True, seasonal_diff=True, season_inputs=False)
    origins, horizon = torch.tensor([39, 45]), 10  # horizon > season: decoding reuses its own forecasts
    changes = gather_changes(encoding.scaled_levels(values), origins, horizon)  # what a perfect model emits
    decoded = encoding.decode(values, origins.numpy(), changes)
    expected = values[origins.numpy()[:, None] + np.arange(1, horizon + 1)]
    np.testing.assert_allclose(decoded, expected, rtol=1e-5)
    untrained = encoding.decode(values, np.array([39]), torch.zeros(1, 2))  # "no change" of u
    z = np.log(values)
    np.testing.assert_allclose(np.log(untrained[0]), z[36:38] + z[39] - z[35], rtol=1e-12)


def test_inputs_hold_scaled_levels_changes_features_and_season_position():
    series = make_series([1.0, 2, 4, 7, 11, 16], features=[[0, 1], [2, 0], [4, 1], [6, 0], [8, 1], [10, 0]])
    series.numeric_features = 1  # column 0 numeric, column 1 a one-hot label
    encoding = Encoding.fit(series, 4, season=4, log=False, seasonal_diff=False, season_inputs=True)
    inputs = encoding.inputs(series)  # (6, 2 + 2 + 4)
    u = (np.array([1.0, 2, 4, 7, 11, 16]) - 3.5) / np.std([1.0, 2, 4, 7])
    np.testing.assert_allclose(inputs[:, 0], u, rtol=1e-6)
    np.testing.assert_allclose(inputs[:, 1], np.diff(u, prepend=u[0]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(inputs[:, 2], (np.arange(0, 12, 2) - 3) / np.std([0, 2, 4, 6]), rtol=1e-6)
    assert inputs[:, 3].tolist() == [1, 0, 1, 0, 1, 0]  # labels are not scaled
    np.testing.assert_allclose(inputs[:, 4], np.sin(2 * np.pi * (np.arange(6) % 4) / 4), atol=1e-6)


def test_baselines_and_mase_by_hand():
    values = np.array([1.0, 3, 2, 6, 4, 8, 5])
    origins = np.array([3, 4])
    assert naive_forecast(values, origins, 3).tolist() == [[6, 6, 6], [4, 4, 4]]
    # season 2: y[t+1] <- y[t-1], y[t+2] <- y[t], y[t+3] <- y[t+1 - 2]... one season before, or two
    assert seasonal_naive_forecast(values, origins, 3, season=2).tolist() == [[2, 6, 2], [6, 4, 6]]
    actual = np.array([[4.0, 8], [8, 5]])  # the values after origins 3 and 4
    scores = score(np.array([[5.0, 6], [8, 8]]), actual, values[:5], season=2)
    # errors 1, 2, 0, 3; training seasonal naive errors |2-1|, |6-3|, |4-2| -> scale 2
    assert scores == pytest.approx({"rmse": np.sqrt(14 / 4), "mae": 1.5, "mase": 0.75})


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    status = main(args)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_train_and_predict_airline_end_to_end(tmp_path, capsys):
    out = tmp_path / "air"
    status, printed, _ = run_cli(
        ["forecast", "train", str(airline()), "--target", "Passengers", "--horizon", "3", "--test-size", "48"]
        + ["--out", str(out), "--epochs", "3", "--seed", "1"],
        capsys,
    )
    assert status == 0 and "Season 12 (monthly data)" in printed and "log, seasonal differences" in printed
    files = {"model.safetensors", "config.json", "metrics.json", "loss_curve.png", "forecast.png"}
    assert files <= {p.name for p in out.iterdir()}
    assert (out / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["forecast_origins"] == 46 and metrics["season"] == 12 and metrics["test_steps"] == 48
    for scores in (metrics, metrics["baselines"]["naive"], metrics["baselines"]["seasonal_naive"]):
        assert set(scores) >= {"rmse", "mae", "mase"} and all(np.isfinite(scores[k]) for k in ("rmse", "mae"))
    assert metrics["rmse"] < metrics["baselines"]["naive"]["rmse"]  # even 3 epochs: log + seasonal diff

    forecast_csv = tmp_path / "next.csv"
    status, printed, _ = run_cli(
        ["forecast", "predict", str(out), str(airline()), "--horizon", "2", "--output", str(forecast_csv)],
        capsys,
    )
    assert status == 0 and str(forecast_csv) in printed
    rows = list(csv.reader(forecast_csv.open()))
    assert rows[0] == ["step", "Month", "Passengers_forecast", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert [row[:2] for row in rows[1:]] == [["1", "1961-01"], ["2", "1961-02"]]
    january, february = (float(row[2]) for row in rows[1:])
    assert 380 < january < 520 and 360 < february < 500  # near 1960-01 (417) and 02 (391) x 1.1 growth
    for row in rows[1:]:
        lo95, lo80, value, hi80, hi95 = (float(row[k]) for k in (5, 3, 2, 4, 6))
        assert lo95 < lo80 < value < hi80 < hi95  # nested intervals around the forecast

    status, printed, _ = run_cli(["forecast", "predict", str(out), str(airline())], capsys)
    assert status == 0 and len(list(csv.reader((out / "forecast.csv").open()))) == 1 + 3  # the model's H


def test_airline_one_step_naive_baseline_matches_the_published_figure(tmp_path, capsys):
    status, _, _ = run_cli(
        ["forecast", "train", str(airline()), "--target", "Passengers", "--horizon", "1", "--test-size", "48"]
        + ["--out", str(tmp_path), "--epochs", "1"],
        capsys,
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert status == 0 and metrics["forecast_origins"] == 48
    assert metrics["baselines"]["naive"]["rmse"] == pytest.approx(48.04, abs=0.01)  # data/README.md: 48.0


def short_csv(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "short.csv"
    path.write_text(
        "Month,Sales\n" + "".join(f"20{10 + i // 12}-{i % 12 + 1:02d},{100 + i}\n" for i in range(rows))
    )
    return path


@pytest.mark.parametrize(
    "args,message",
    [
        (["missing.csv", "--target", "y"], r"missing\.csv: no such file"),
        (["{empty}", "--target", "y"], r"empty\.csv: the file is empty"),
        (["{short}", "--target", "sales"], r"no column 'sales'; the columns are Month, Sales"),
        (["{text}", "--target", "Sales"], r"text\.csv, line 4, column 'Sales': 'n/a\?' is not a number"),
        (["{short}", "--target", "Sales", "--window", "30"], r"40 steps are too few for window 30"),
        (["{short}", "--target", "Sales", "--horizon", "9"], r"--horizon 9 is longer than the test part \(8"),
        (["{short}", "--target", "Sales", "--test-size", "40"], r"--test-size 40 leaves 40 of 40 steps"),
    ],
)
def test_bad_training_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "text.csv").write_text("Month,Sales\n2010-01,1\n2010-02,2\n2010-03,n/a?\n")
    names = {
        "{empty}": tmp_path / "empty.csv",
        "{short}": short_csv(tmp_path, 40),
        "{text}": tmp_path / "text.csv",
    }
    args = [str(names.get(a, a)) for a in args]
    horizon = [] if "--horizon" in args else ["--horizon", "1"]
    status, _, error = run_cli(["forecast", "train", *args, *horizon, "--out", str(tmp_path / "run")], capsys)
    assert status == 2 and len(error.strip().splitlines()) == 1 and "Traceback" not in error
    assert error.startswith("lstmkit forecast: error: ")
    assert re.search(message, error), error
    assert not (tmp_path / "run").exists()  # nothing written before the input is known to be good


def test_horizon_zero_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["forecast", "train", str(short_csv(tmp_path, 40)), "--target", "Sales", "--horizon", "0"])
    error = capsys.readouterr().err
    assert stop.value.code == 2 and "--horizon: must be a whole number >= 1, got '0'" in error


def test_predict_refuses_other_tasks_and_longer_horizons(tmp_path, capsys):
    other = tmp_path / "charlm-run"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"task": "charlm"}))
    status, _, error = run_cli(["forecast", "predict", str(other), str(short_csv(tmp_path, 40))], capsys)
    assert status == 2 and "holds a 'charlm' model, not a 'forecast' one" in error
    assert len(error.strip().splitlines()) == 1

    out = tmp_path / "run"
    data = short_csv(tmp_path, 60)
    train = ["forecast", "train", str(data), "--target", "Sales", "--horizon", "2", "--out", str(out)]
    assert run_cli([*train, "--epochs", "1"], capsys)[0] == 0
    status, _, error = run_cli(["forecast", "predict", str(out), str(data), "--horizon", "5"], capsys)
    assert (
        status == 2
        and "--horizon 5 is out of range: the model in" in error
        and "forecasts 2 step(s)" in error
    )
    status, _, error = run_cli(["forecast", "predict", str(out), str(short_csv(tmp_path, 5))], capsys)
    assert status == 2 and "5 steps are too few" in error
