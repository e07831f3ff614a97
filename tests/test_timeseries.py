"""Reading time series: the data files' quirks, missing times and values, categories, season detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import DATA

from lstmkit import datasets
from lstmkit.data.timeseries import (
    detect_season,
    load_series,
    read_table,
    seasonal_strength,
    spread_grows_with_level,
)
from lstmkit.errors import InputError

TEMPERATURES = DATA / "daily-temperatures.csv"


def test_airline_csv_with_crlf_quoted_months_and_no_final_newline():
    path = datasets.path("airline-passengers.csv")
    raw = path.read_bytes()
    assert b'\r\n"1949-01",112' in raw and not raw.endswith(b"\n")  # the quirks are really there
    series = load_series(path, "Passengers")
    assert len(series.values) == 144 and series.clock.frequency == "monthly"
    assert series.values[[0, 1, -1]].tolist() == [112.0, 118.0, 432.0]
    assert series.clock.format(series.times[[0, -1]]) == ["1949-01", "1960-12"]
    assert series.time_name == "Month" and series.notes == [] and series.missing == {}


def test_daily_temperatures_gap_is_detected_filled_and_reported():
    raw = TEMPERATURES.read_bytes()
    assert raw.startswith(b'"Date","Temp"\r\n"1981-01-01",') and not raw.endswith(b"\n")
    assert b'"1984-12-31"' not in raw and b'"1988-12-31"' not in raw  # the two days are really absent
    rows = raw.count(b"\r\n")  # lines after the header
    assert rows == 3650
    series = load_series(TEMPERATURES, "Temp")
    assert len(series.values) == rows + 2  # 3650 rows + the two absent days
    assert series.missing == {"Temp": 2}
    gap_note = series.notes[0]
    assert gap_note.startswith("2 missing daily time(s)") and "1984-12-31, 1988-12-31" in gap_note
    days = series.clock.format(series.times)
    for day in ("1984-12-31", "1988-12-31"):
        i = days.index(day)
        assert series.values[i] == pytest.approx((series.values[i - 1] + series.values[i + 1]) / 2)
    assert np.all(np.diff(series.times.astype("datetime64[D]").astype(int)) == 1)


def test_pollution_na_and_categorical_wind_direction():
    path = DATA / "pollution-2000.csv"  # the header + the first 2000 hours, CRLF, no final newline
    raw = path.read_bytes()
    assert not raw.endswith(b"\n")
    lines = raw.split(b"\r\n")
    assert len(lines) == 2001
    na_rows = sum(line.split(b",")[5] == b"NA" for line in lines[1:])
    series = load_series(path, "pm2.5", features=["DEWP", "cbwd"])
    assert series.clock.frequency == "hourly" and series.time_name == "year+month+day+hour"
    assert series.missing == {"pm2.5": na_rows} and na_rows > 24
    assert len(series.values) == 2000 - 24  # the first day has no pm2.5 at all: dropped
    assert series.clock.format(series.times[:1]) == ["2010-01-02 00:00"]
    assert series.feature_names == ["DEWP", "cbwd=NE", "cbwd=NW", "cbwd=SE", "cbwd=cv"]
    assert series.categories == {"cbwd": ["NE", "NW", "SE", "cv"]}
    assert series.features[:3, 1:].tolist() == [[0, 0, 1, 0]] * 3  # 2010-01-02 00:00-02:00 are SE
    assert np.all(series.features[:, 1:].sum(axis=1) == 1)
    assert not np.isnan(series.values).any() and "24 row(s) dropped" in series.notes[0]


def test_interior_gaps_are_interpolated_along_time(tmp_path):
    path = tmp_path / "gappy.csv"
    path.write_text("day,value,label\n2020-01-01,1,a\n2020-01-02,NA,\n2020-01-03,,b\n2020-01-05,7,b\n")
    series = load_series(path, "value", features=["label"])
    assert series.values.tolist() == [1, 2.5, 4, 5.5, 7]  # 01-02 and 01-03 empty, 01-04 absent
    assert series.missing == {"value": 3, "label": 2}
    assert series.features.tolist() == [[1, 0], [1, 0], [0, 1], [0, 1], [0, 1]]  # labels carried forward


def test_season_detection_by_frequency_and_strength():
    rng = np.random.default_rng(0)
    days = np.arange(3 * 365)
    weekly = 10 + 3 * (days % 7 == 5) + rng.normal(0, 0.3, len(days))  # a weekend bump
    yearly = 10 + 5 * np.sin(2 * np.pi * days / 365) + rng.normal(0, 1, len(days))
    assert detect_season(weekly, "daily")[0] == 7
    assert detect_season(yearly, "daily")[0] == 365
    assert detect_season(rng.normal(size=400), "daily")[0] == 7  # no pattern: the default
    assert detect_season(weekly, "monthly") == (12, "monthly data")
    assert detect_season(weekly, "hourly")[0] == 24
    temps = load_series(TEMPERATURES, "Temp")
    assert detect_season(temps.values[:2920], "daily")[0] == 365


def test_seasonal_strength_and_multiplicative_detection():
    steps = np.arange(120)
    pattern = np.sin(2 * np.pi * steps / 12)
    assert seasonal_strength(5 + pattern + 0.01 * steps, 12) > 0.99
    assert seasonal_strength(np.random.default_rng(1).normal(size=120), 12) < 0.2
    assert seasonal_strength(pattern[:20], 12) == 0.0  # shorter than two seasons
    level = 100 + 5 * steps
    assert spread_grows_with_level(level * (1 + 0.2 * pattern), 12)
    assert not spread_grows_with_level(level + 20 * pattern, 12)
    assert not spread_grows_with_level(level * (1 + 0.2 * pattern) - 200, 12)  # not positive


@pytest.mark.parametrize(
    "content,column,message",
    [
        (b"", "v", r"the file is empty"),
        (b"t,v\r\n", "v", r"only a header line"),
        (b"t,v\n2020-01,1\n", "value", r"no column 'value'; the columns are t, v"),
        (b"t,v\n2020-01,1\n2020-02,2,3\n", "v", r"line 3: 3 fields but the header has 2"),
        (b"t,v\n2020-01,1\n2020-02,lots\n", "v", r"line 3, column 'v': 'lots' is not a number"),
        (b"t,v\n2020-01,1\n2020-01,2\n", "v", r"line 3: time 2020-01 does not come after"),
        (b"t,v\n2020-01,1\n2020-02,\xff\n", "v", r"line 3: not UTF-8 text \(byte 0xff\)"),
    ],
)
def test_bad_files_name_the_line_and_column(tmp_path, content, column, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as error:
        load_series(path, column)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_missing_file():
    with pytest.raises(InputError, match=r"nowhere\.csv: no such file"):
        read_table(Path("nowhere.csv"))


def test_month_end_dates_make_a_monthly_series(tmp_path):
    path = tmp_path / "month-ends.csv"
    path.write_text("date,v\n2020-01-31,1\n2020-02-29,2\n2020-03-31,3\n2020-05-31,5\n")
    series = load_series(path, "v")
    assert series.clock.frequency == "monthly" and series.values.tolist() == [1, 2, 3, 4, 5]
    assert series.clock.format(series.times) == ["2020-01", "2020-02", "2020-03", "2020-04", "2020-05"]
