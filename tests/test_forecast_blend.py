"""The forecast proper (chosen on the validation part), its intervals, the statistical baselines and the
M4 metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstmkit.tasks.forecast_blend import LSTM, Intervals, blend, choose, describe
from lstmkit.train.metrics import coverage, msis, owa, smape


def test_choose_takes_the_lowest_mae_and_can_take_the_mean():
    actual = np.array([[1.0, 2.0], [3.0, 4.0]])
    forecasts = {LSTM: actual + 1.0, "AutoETS": actual + 3.0}
    assert choose(forecasts, actual) == {LSTM: 1.0}  # the mean (+2) is worse than the LSTM (+1)
    forecasts = {LSTM: actual + 1.0, "AutoETS": actual - 1.0, "AutoTheta": actual + 5.0}
    weights = choose(forecasts, actual)  # the mean of LSTM and AutoETS is exact
    assert weights == {LSTM: 0.5, "AutoETS": 0.5} and describe(weights) == "mean(LSTM, AutoETS)"
    np.testing.assert_allclose(blend(forecasts, weights), actual)
    assert choose({LSTM: actual + 2.0, "AutoETS": actual + 0.5}, actual) == {"AutoETS": 1.0}


@pytest.mark.parametrize("origins", [20, 400])  # the normal quantiles, then the empirical ones
def test_intervals_cover_their_level_on_errors_like_the_validation_ones(origins):
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(origins, 3)) * [1.0, 2.0, 3.0]  # errors growing with the step
    intervals = Intervals.fit(np.zeros((origins, 3)), truth, np.ones(origins), log=False)
    new = rng.normal(size=(20_000, 3)) * [1.0, 2.0, 3.0]
    for level in (80, 95):
        lo, hi = intervals.bounds(np.zeros((20_000, 3)), np.ones(20_000), level)
        assert abs(coverage(lo, hi, new) - level / 100) < (0.1 if origins == 20 else 0.025)
        assert (hi[:, 2] - lo[:, 2]).mean() > 2 * (hi[:, 0] - lo[:, 0]).mean()  # wider further ahead
    restored = Intervals.from_dict(intervals.to_dict())
    assert restored == intervals


def test_log_intervals_are_multiplicative_and_scaled_per_row():
    rng = np.random.default_rng(1)
    forecast = np.full((500, 1), 100.0)
    actual = forecast * np.exp(rng.normal(scale=0.1, size=(500, 1)))
    intervals = Intervals.fit(forecast, actual, np.ones(500), log=True)
    lo, hi = intervals.bounds(np.array([[100.0], [1000.0]]), np.array([1.0, 2.0]), 95)
    assert lo[0, 0] * hi[0, 0] == pytest.approx(100.0**2, rel=0.05)  # symmetric in log
    assert np.log(hi[1, 0] / lo[1, 0]) == pytest.approx(2 * np.log(hi[0, 0] / lo[0, 0]))  # twice the scale
    assert (lo > 0).all()


def test_m4_metrics_worked_by_hand():
    actual, forecast = np.array([10.0, 20.0]), np.array([12.0, 15.0])
    assert smape(forecast, actual) == pytest.approx((200 * 2 / 22 + 200 * 5 / 35) / 2)
    train = np.array([1.0, 3.0, 2.0, 6.0])  # season 2: |2 - 1|, |6 - 3| -> scale 2
    lo, hi = np.array([9.0, 21.0]), np.array([11.0, 25.0])  # 10 inside; 20 below 21
    assert coverage(lo, hi, actual) == 0.5
    expected = ((11 - 9) + (25 - 21) + (2 / 0.05) * (21 - 20)) / 2 / 2
    assert msis(lo, hi, actual, train, season=2, alpha=0.05) == pytest.approx(expected)
    assert owa(10.0, 1.0, 20.0, 2.0) == pytest.approx(0.5)


def test_the_statistical_forecasts_are_statsforecasts_cross_validation_without_refit():
    pytest.importorskip("statsforecast")
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta

    from lstmkit.stat_baselines import statistical_forecasts

    rng = np.random.default_rng(2)
    steps, season, horizon, n_fit = 72, 12, 3, 60
    y = (
        50
        + 0.3 * np.arange(steps)
        + 8 * np.sin(2 * np.pi * np.arange(steps) / season)
        + rng.normal(size=steps)
    )
    origins = np.arange(n_fit - 1, steps - horizon)
    found, notes = statistical_forecasts(y, n_fit, origins, horizon, season, methods=("AutoETS", "AutoTheta"))
    assert notes == [] and set(found) == {"AutoETS", "AutoTheta"}
    frame = pd.DataFrame({"unique_id": "a", "ds": np.arange(steps), "y": y})
    sf = StatsForecast(models=[AutoETS(season_length=season), AutoTheta(season_length=season)], freq=1)
    cv = sf.cross_validation(df=frame, h=horizon, n_windows=len(origins), step_size=1, refit=False)
    for name in ("AutoETS", "AutoTheta"):
        theirs = cv[name].to_numpy().reshape(len(origins), horizon)
        np.testing.assert_allclose(found[name].point, theirs, rtol=1e-6)
        lo, hi = found[name].intervals[95]
        assert (lo < found[name].point).all() and (found[name].point < hi).all()


def test_a_short_series_forecast_does_not_lose_to_the_statistical_methods():
    """40 monthly steps of a clean seasonal series: too few for the network; the forecast chosen on the
    validation part is a statistical method or a mean with one, and is not worse than the best of them."""
    pytest.importorskip("statsforecast")
    from lstmkit import Forecaster

    rng = np.random.default_rng(3)
    steps = np.arange(48)
    y = 100 + 2 * steps + 15 * np.sin(2 * np.pi * steps / 12) + rng.normal(scale=1.0, size=48)
    frame = pd.DataFrame({"Month": pd.date_range("2020-01", periods=48, freq="MS"), "Sales": y})
    fc = Forecaster(horizon=3).fit(frame, target="Sales", test_size=9, epochs=20, verbose=False)
    metrics = fc.evaluate()
    stats = [
        metrics["baselines"][name]["mae"] for name in ("AutoETS", "AutoTheta") if name in metrics["baselines"]
    ]
    assert stats and metrics["forecast"] != LSTM
    assert metrics["mae"] <= 1.25 * min(
        stats
    )  # chosen on 5 validation origins: near the best, not the LSTM's
    assert metrics["mae"] < 0.8 * metrics["LSTM"]["mae"]


def test_local_scale_is_the_mean_absolute_step_over_the_window():
    from lstmkit.tasks.forecast_blend import local_scale

    values = np.array([1.0, 2.0, 4.0, 7.0, 7.0])  # steps 1, 2, 3, 0
    np.testing.assert_allclose(local_scale(values, np.array([2, 4]), window=2, log=False), [1.5, 1.5])
    np.testing.assert_allclose(local_scale(values, np.array([3]), window=3, log=False), [2.0])
    np.testing.assert_allclose(local_scale(values, np.array([1]), window=2, log=True), [np.log(2)])


def test_without_statsforecast_the_lstm_is_the_forecast_and_the_report_says_how_to_add_them(monkeypatch):
    from lstmkit import Forecaster, stat_baselines

    monkeypatch.setattr(stat_baselines, "have_statsforecast", lambda: False)
    steps = np.arange(60)
    frame = pd.DataFrame(
        {"Month": pd.date_range("2020-01", periods=60, freq="MS"), "Sales": 50 + steps % 12 + 0.5 * steps}
    )
    fc = Forecaster(horizon=2).fit(frame, target="Sales", test_size=12, epochs=2, verbose=False)
    metrics = fc.evaluate()
    assert metrics["forecast"] == LSTM and metrics["mae"] == metrics["LSTM"]["mae"]
    assert set(metrics["baselines"]) == {"naive", "seasonal_naive"}
    assert any("pip install 'lstmkit[stats]'" in note for note in metrics["baseline_notes"])
    assert "pip install 'lstmkit[stats]'" in fc.score_table()
