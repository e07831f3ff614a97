"""Many series, one model: lstmkit.GlobalForecaster and `forecast train|predict` on long and M4 wide files."""

from __future__ import annotations

import csv
import re

import numpy as np
import pandas as pd
import pytest
from conftest import DATA

import lstmkit
from lstmkit.baselines import naive_forecast
from lstmkit.cli import main
from lstmkit.errors import InputError
from lstmkit.stat_baselines import naive2_forecast
from lstmkit.train.metrics import owa, seasonal_scale, smape

M4_TRAIN = DATA / "m4-hourly-sample" / "Hourly-train.csv"
M4_TEST = DATA / "m4-hourly-sample" / "Hourly-test.csv"
STORES = DATA / "stores-long.csv"
QUICK = {"epochs": 3, "seed": 0, "precision": "fp32"}
NIXTLA = ["unique_id", "ds", "forecast", "lo_80", "hi_80", "lo_95", "hi_95"]


def wide(path) -> list[np.ndarray]:
    with open(path, newline="") as file:
        return [np.array([float(v) for v in row[1:] if v]) for row in list(csv.reader(file))[1:]]


@pytest.fixture(scope="module")
def m4_model():
    """Trained on the M4 sample (5 hourly series), tested on the competition's test file."""
    gf = lstmkit.GlobalForecaster(horizon=48, **QUICK)
    return gf.fit(M4_TRAIN, test_data=M4_TEST, statistical=("AutoTheta",), verbose=False)


def test_m4_sample_is_scored_as_the_competition_scores(m4_model):
    metrics = m4_model.evaluate(verbose=False)
    train, test = wide(M4_TRAIN), wide(M4_TEST)
    assert (metrics["season"], metrics["series"], metrics["forecast_origins"]) == (24, 5, 5)

    def means(forecasts):  # M4: each series' sMAPE and MASE over its 48 steps, then the mean over series
        pairs = [
            (smape(f, a), np.mean(np.abs(f - a)) / seasonal_scale(y, 24))
            for f, a, y in zip(forecasts, test, train)
        ]
        return np.mean(pairs, axis=0)

    naive = means([naive_forecast(y, np.array([len(y) - 1]), 48)[0] for y in train])
    naive2 = means([naive2_forecast(y, 48, 24) for y in train])
    baselines = metrics["baselines"]
    assert [baselines["naive"]["smape"], baselines["naive"]["mase"]] == pytest.approx(naive)
    assert [baselines["naive2"]["smape"], baselines["naive2"]["mase"]] == pytest.approx(naive2)
    assert baselines["naive2"]["owa"] == pytest.approx(1.0)
    assert baselines["naive"]["owa"] == pytest.approx(owa(*naive, *naive2))
    # the model's own scores, recomputed from its forecast of what follows the training file
    frame = m4_model.predict(M4_TRAIN)
    forecasts = [frame[frame.unique_id == key].forecast.to_numpy() for key in frame.unique_id.unique()]
    assert [metrics["smape"], metrics["mase"]] == pytest.approx(means(forecasts))
    assert metrics["owa"] < 1.0  # three epochs already beat Naive2 on these series
    assert set(baselines) == {"naive", "seasonal_naive", "naive2", "AutoTheta"}
    assert 0 < metrics["intervals"]["95"]["coverage"] <= 1
    assert metrics["intervals"]["95"]["msis"] > 0
    assert metrics["winner"]["owa"] in {"lstmkit", *baselines}
    assert "AutoARIMA not run" in " ".join(metrics["baseline_notes"])  # 700-step series: said, not silent


def test_future_ds_and_intervals_in_nixtla_columns(m4_model):
    frame = m4_model.predict()  # the fitted data: training and test files joined
    assert list(frame.columns) == NIXTLA and len(frame) == 5 * 48
    h1 = frame[frame.unique_id == "H1"]
    assert h1.ds.tolist() == list(range(749, 797))  # 700 training + 48 test steps, then the future
    assert (h1.lo_95 < h1.lo_80).all() and (h1.lo_80 < h1.forecast).all()
    assert (h1.forecast < h1.hi_80).all() and (h1.hi_80 < h1.hi_95).all()
    short = m4_model.predict(M4_TRAIN, horizon=6)
    assert len(short) == 5 * 6 and short[short.unique_id == "H2"].ds.tolist() == list(range(701, 707))
    with pytest.raises(InputError, match="--horizon 49 is out of range"):
        m4_model.predict(horizon=49)


def test_save_and_load_give_the_same_forecasts(m4_model, tmp_path):
    m4_model.evaluate(verbose=False)
    written = {path.name for path in m4_model.save(tmp_path / "m4")}
    assert {
        "model.safetensors",
        "config.json",
        "metrics.json",
        "series_metrics.csv",
        "forecast.png",
    } <= written
    for loaded in (lstmkit.load(tmp_path / "m4"), lstmkit.Forecaster.load(tmp_path / "m4")):
        assert isinstance(loaded, lstmkit.GlobalForecaster)
        pd.testing.assert_frame_equal(loaded.predict(M4_TRAIN), m4_model.predict(M4_TRAIN))
    with open(tmp_path / "m4" / "series_metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["unique_id"] for row in rows] == ["H1", "H2", "H3", "H4", "H5"]
    per_series = [float(row["lstmkit_smape"]) for row in rows]
    assert np.mean(per_series) == pytest.approx(m4_model.metrics["smape"], rel=1e-5)


def test_a_new_series_is_forecast_in_its_own_units(m4_model):
    values = wide(M4_TRAIN)[0][-300:] * 1000.0  # not seen in training, a thousand times larger
    frame = pd.DataFrame({"unique_id": "new", "ds": np.arange(1, 301), "y": values})
    forecast = m4_model.predict(frame)
    assert forecast.ds.tolist() == list(range(301, 349))
    assert 0.3 * values.mean() < forecast.forecast.mean() < 3 * values.mean()


def test_long_file_with_dates_and_an_exogenous_column():
    gf = lstmkit.GlobalForecaster(horizon=3, **QUICK).fit(STORES, features=["price"], verbose=False)
    assert gf.input_size == 3  # level, change, price
    metrics = gf.evaluate(verbose=False)
    assert metrics["series"] == 3 and metrics["test_steps"] == 9
    assert any("AutoETS left out" in note for note in metrics["baseline_notes"])  # 21 steps: too few
    frame = gf.predict()
    assert frame[frame.unique_id == "store-1"].ds.tolist() == ["2023-01-01", "2023-02-01", "2023-03-01"]


def test_test_size_zero_trains_on_every_step():
    gf = lstmkit.GlobalForecaster(horizon=3, **QUICK).fit(STORES, test_size=0, verbose=False)
    assert gf.test_steps == 0
    with pytest.raises(InputError, match="holds no forecast origin"):
        gf.evaluate(verbose=False)
    assert len(gf.predict()) == 9


def test_the_single_series_forecaster_points_to_the_global_one():
    with pytest.raises(
        InputError,
        match="holds 3 series .unique_id.; this forecaster models one series: use lstmkit.GlobalForecaster",
    ):
        lstmkit.Forecaster(horizon=3).fit(STORES, verbose=False)
    with pytest.raises(InputError, match="holds the M4 wide layout.*lstmkit.GlobalForecaster"):
        lstmkit.Forecaster(horizon=3).fit(M4_TRAIN, verbose=False)


def run_cli(args, capsys):
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_train_and_predict_a_long_file(tmp_path, capsys):
    out = tmp_path / "stores"
    status, printed, _ = run_cli(
        ["forecast", "train", STORES, "--horizon", "3", "--epochs", "2", "--baselines", "none", "--out", out],
        capsys,
    )
    assert status == 0
    assert "3 series (unique_id) of 24-24 monthly steps" in printed and "OWA" in printed
    assert "Best on the test part:" in printed
    status, printed, _ = run_cli(["forecast", "predict", out, STORES, "--output", tmp_path / "f.csv"], capsys)
    assert status == 0 and "Wrote 9 forecast rows (3 series x 3 steps)" in printed
    frame = pd.read_csv(tmp_path / "f.csv")
    assert (
        list(frame.columns) == NIXTLA
        and frame.unique_id.tolist() == ["store-1"] * 3 + ["store-2"] * 3 + ["store-3"] * 3
    )


def test_cli_m4_pair_and_test_size_zero(tmp_path, capsys):
    status, printed, _ = run_cli(
        ["forecast", "train", M4_TRAIN, "--test-file", M4_TEST, "--horizon", "48", "--epochs", "1"]
        + ["--baselines", "none", "--out", tmp_path / "m4"],
        capsys,
    )
    assert status == 0 and "5 series" in printed and "naive2" in printed
    status, printed, _ = run_cli(
        [
            "forecast",
            "train",
            STORES,
            "--horizon",
            "3",
            "--test-size",
            "0",
            "--epochs",
            "1",
            "--out",
            tmp_path / "z",
        ],
        capsys,
    )
    assert status == 0 and "No test part (--test-size 0)" in printed


BAD_INPUT = [
    ("unique_id,ds,y\na,1,5\na,2,6\na,3,7\nb,1,7\n", r"line 5 \(series 'b'\): 1 row\(s\)"),
    (
        "unique_id,ds,y\na,1,5\na,2,6\na,2,7\nb,1,1\nb,2,2\n",
        r"line 4 \(series 'a'\): ds '2' again \(first at line 3\)",
    ),
    ("unique_id,ds,y\na,1,5\na,2,6\nb,1,\nb,2,\n", r"line 4 \(series 'b'\): no y values"),
    ("unique_id,ds,y\na,1,5\n,2,6\n", r"line 3: empty unique_id"),
    (
        "unique_id,ds,y\na,1,5\na,2,many\nb,1,3\nb,2,4\n",
        r"line 3 \(series 'a'\), column 'y': 'many' is not a number",
    ),
    (
        '"V1","V2","V3","V4"\n"a","1","2","3"\n"b","1","","3"\n',
        r"line 3 \(series 'b'\), column 'V3': empty, but",
    ),
    (
        '"V1","V2","V3"\n"a","1","2"\n"b","4","x"\n',
        r"line 3 \(series 'b'\), column 'V3': 'x' is not a number",
    ),
]


@pytest.mark.parametrize("content,message", BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "data.csv"
    path.write_text(content)
    out = tmp_path / "run"
    status, _, error = run_cli(["forecast", "train", path, "--horizon", "1", "--out", out], capsys)
    assert status == 2 and len(error.strip().splitlines()) == 1
    assert str(path) in error
    assert re.search(message, error), error
    assert not out.exists()  # nothing written for bad data


def test_gates_of_one_series_while_it_reads_its_last_window(m4_model):
    record = m4_model.gates(M4_TRAIN, series="H2")
    h2 = wide(M4_TRAIN)[1]
    window = m4_model.window
    assert record.tokens == [f"{v:.4g}" for v in h2[-window:]]
    assert record.values["cell"].shape == (1, window, m4_model.hidden_size)
    first = m4_model.predict(M4_TRAIN).query("unique_id == 'H2'").forecast.iloc[0]
    assert record.summary.startswith(f"forecast of what follows: 701: {first:.4g}")
    with pytest.raises(InputError, match="no series 'H9'"):
        m4_model.gates(M4_TRAIN, series="H9")
