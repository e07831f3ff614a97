"""Reading many series from one file: the long format (unique_id, ds, y), M4's wide one, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import DATA

from lstmkit.data.panel import Panel, detect_layout, is_m4_wide, load_long, load_m4_pair, load_m4_wide
from lstmkit.data.timeseries import load_series
from lstmkit.errors import InputError

STORES = DATA / "stores-long.csv"
M4_TRAIN = DATA / "m4-hourly-sample" / "Hourly-train.csv"
M4_TEST = DATA / "m4-hourly-sample" / "Hourly-test.csv"


def write(tmp_path, text: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


PANEL_FIELDS = (
    "ids",
    "id_name",
    "time_name",
    "integer_steps",
    "first_steps",
    "notes",
    "ds_unit",
    "month_ends",
)
SERIES_FIELDS = ("target", "feature_names", "numeric_features", "categories", "clock", "time_name", "missing")


def assert_same_panel(a: Panel, b: Panel) -> None:
    """Every field but the source, arrays compared exactly."""
    assert [getattr(a, name) for name in PANEL_FIELDS] == [getattr(b, name) for name in PANEL_FIELDS]
    for x, y in zip(a.series, b.series, strict=True):
        assert [getattr(x, name) for name in SERIES_FIELDS] == [getattr(y, name) for name in SERIES_FIELDS]
        assert x.notes == y.notes and np.array_equal(x.values, y.values)
        assert np.array_equal(x.features, y.features)
        assert (x.times is None and y.times is None) or np.array_equal(x.times, y.times)


def test_long_file_interleaved_unsorted_with_gaps_and_exogenous_columns():
    raw = STORES.read_text().splitlines()
    assert raw[2].startswith("store-2,2022-12-01,") and "store-1,2021-06-01,,9.44,off" in raw  # the quirks
    panel = load_long(STORES, features=["price", "promo"])
    assert panel.ids == ["store-1", "store-2", "store-3"] and len(panel) == 3
    assert (panel.id_name, panel.time_name, panel.integer_steps) == ("unique_id", "ds", False)
    assert panel.first_steps == [] and (panel.ds_unit, panel.month_ends) == ("D", False)
    months = [f"{year}-{month:02d}" for year in (2021, 2022) for month in range(1, 13)]
    for series in panel.series:
        assert series.clock.frequency == "monthly" and series.clock.format(series.times) == months
        assert series.feature_names == ["price", "promo=off", "promo=tv", "promo=web"]
        assert series.numeric_features == 1 and series.categories == {"promo": ["off", "tv", "web"]}
        assert np.all(series.features[:, 1:].sum(axis=1) == 1) and not np.isnan(series.values).any()
    rows = {(key, ds): y for key, ds, y, *_ in (line.split(",") for line in raw[1:])}
    store_2 = [float(rows["store-2", f"{month}-01"]) for month in months]
    assert panel.series[1].values.tolist() == store_2  # written in reverse, read in time order
    store_1 = panel.series[0].values
    assert store_1[5] == pytest.approx((store_1[4] + store_1[6]) / 2)  # 2021-06 interpolated
    neighbours = [float(rows["store-1", day]) for day in ("2021-05-01", "2021-07-01")]
    assert store_1[[4, 6]].tolist() == neighbours
    assert panel.notes == [
        "rows sorted by ds in 1 series ('store-2')",
        "series 'store-1': missing values: y 1; interpolated along time",
        "series 'store-3': 1 missing monthly time(s) inserted and interpolated: 2022-03",
        "series 'store-3': missing values: y 1, price 1, promo 1; interpolated along time",
    ]
    assert panel.future_ds(0, 3) == ["2023-01-01", "2023-02-01", "2023-03-01"]  # written as the input's


def test_long_series_are_read_as_load_series_reads_each():
    panel = load_long(STORES, features=["price", "promo"])
    frame = pd.read_csv(STORES, dtype=str, keep_default_na=False)
    for key, series in zip(panel.ids, panel.series):
        one = frame[frame.unique_id == key].sort_values("ds", kind="stable").drop(columns="unique_id")
        alone = load_series(one, "y", ["ds"], ["price", "promo"], series.categories)
        assert np.array_equal(alone.values, series.values) and np.array_equal(alone.features, series.features)
        assert np.array_equal(alone.times, series.times) and alone.notes == series.notes


def test_a_dataframe_gives_the_same_panel_as_its_csv():
    from_csv = load_long(STORES, features=["price", "promo"])
    from_frame = load_long(pd.read_csv(STORES), features=["price", "promo"])
    assert from_frame.source == "DataFrame" and from_csv.source == str(STORES)
    assert_same_panel(from_frame, from_csv)


def test_integer_steps_unsorted_with_a_missing_step(tmp_path):
    path = write(tmp_path, "unique_id,ds,y\nb,12,5\na,2,20\na,1,10\nb,10,1\na,4,40\nb,11,3\n")
    panel = load_long(path)
    assert panel.integer_steps and panel.ids == ["b", "a"] and panel.first_steps == [10, 1]  # file order
    b, a = panel.series
    assert b.values.tolist() == [1, 3, 5] and a.values.tolist() == [10, 20, 30, 40]  # a's step 3 inserted
    assert a.times is None and a.clock.frequency == "steps" and a.time_name == "ds"
    assert panel.notes == [
        "rows sorted by ds in 2 series ('b', 'a')",
        "series 'a': 1 missing step(s) inserted and interpolated: 3",
        "series 'a': missing values: y 1; interpolated along time",
    ]
    assert panel.future_ds(0, 3) == ["13", "14", "15"] and panel.future_ds(1, 2) == ["5", "6"]


def test_integer_steps_from_a_dataframe_of_floats():
    frame = pd.DataFrame({"unique_id": ["x"] * 3 + ["y"] * 3, "ds": [1.0, 2, 3, 1, 2, np.nan], "y": range(6)})
    with pytest.raises(InputError, match=r"DataFrame, row 6 \(series 'y'\): no ds \(time\) value"):
        load_long(frame)
    panel = load_long(frame.dropna())
    assert panel.integer_steps and panel.first_steps == [1, 1] and panel.future_ds(0, 1) == ["4"]


def test_future_ds_of_monthly_hourly_and_month_end_dates(tmp_path):
    monthly = load_long(
        write(tmp_path, "unique_id,ds,y\na,2020-11,1\na,2020-12,2\nb,2020-12,1\nb,2021-01,2\n")
    )
    assert monthly.future_ds(0, 3) == ["2021-01", "2021-02", "2021-03"]
    assert monthly.future_ds(1, 1) == ["2021-02"]
    ends = load_long(
        write(tmp_path, "unique_id,ds,y\na,2020-01-31,1\na,2020-02-29,2\nb,2020-01-31,3\nb,2020-02-29,4\n")
    )
    assert ends.month_ends and ends.future_ds(0, 3) == ["2020-03-31", "2020-04-30", "2020-05-31"]
    text = "unique_id,ds,y\nh,2020-12-31 22:00,1\nh,2020-12-31 23:00,2\n"
    text += "g,2020-12-31 23:00,1\ng,2021-01-01 00:00,5\n"
    hourly = load_long(write(tmp_path, text))
    assert hourly.series[0].clock.frequency == "hourly"
    assert hourly.future_ds(0, 2) == ["2021-01-01 00:00", "2021-01-01 01:00"]
    assert hourly.future_ds(1, 1) == ["2021-01-01 01:00"]
    days = pd.to_datetime(["2020-01-01", "2020-01-02"] * 2)
    seconds = load_long(pd.DataFrame({"unique_id": list("aabb"), "ds": days, "y": range(4)}))
    assert seconds.future_ds(0, 1) == ["2020-01-03 00:00:00"]  # a DataFrame's timestamps come as seconds


def test_m4_wide_sample_and_its_test_file():
    raw = M4_TRAIN.read_bytes().split(b"\n")
    assert raw[0].startswith(b'"V1","V2",') and raw[0].endswith(b'"V961"') and raw[1].endswith(b",,,")
    assert is_m4_wide(M4_TRAIN) and is_m4_wide(M4_TEST) and not is_m4_wide(STORES)
    assert detect_layout(M4_TRAIN) == "wide" and detect_layout(STORES) == "long"
    train, test = load_m4_pair(M4_TRAIN, M4_TEST)
    assert train.ids == test.ids == ["H1", "H2", "H3", "H4", "H5"]
    assert (train.id_name, train.time_name, train.integer_steps) == ("unique_id", "", True)
    first = [float(v.strip('"')) for v in raw[1].decode().split(",")[1:] if v]
    assert train.series[0].values.tolist() == first and len(first) == 700
    assert [len(s.values) for s in test.series] == [48] * 5 and test.series[0].values[0] == 619
    assert train.first_steps == [1] * 5 and test.first_steps == [701] * 5
    assert train.future_ds(0, 48) == [str(step) for step in range(701, 749)]
    assert test.future_ds(0, 1) == ["749"]
    assert all(
        s.times is None and s.clock.frequency == "steps" and s.features.shape == (700, 0)
        for s in train.series
    )
    assert_same_panel(load_m4_wide(M4_TRAIN), train)


def test_wide_rows_of_different_lengths(tmp_path):
    path = write(
        tmp_path, '"V1","V2","V3","V4","V5"\n"a","1","2","",""\n"b","1","2","3","4"\n"c","5","6","7",""\n'
    )
    panel = load_m4_wide(path)
    assert [s.values.tolist() for s in panel.series] == [[1, 2], [1, 2, 3, 4], [5, 6, 7]]
    assert panel.future_ds(0, 2) == ["3", "4"] and panel.future_ds(2, 1) == ["4"]
    frame = pd.read_csv(path)
    assert is_m4_wide(frame) and detect_layout(frame) == "wide"
    assert [s.values.tolist() for s in load_m4_wide(frame).series] == [[1, 2], [1, 2, 3, 4], [5, 6, 7]]


def test_layouts(tmp_path):
    one = write(tmp_path, "unique_id,ds,y\nH1,1,5\nH1,2,6\n", "one.csv")
    assert detect_layout(one) == "single"  # one id: read by load_series, as today
    assert detect_layout(write(tmp_path, "Month,Passengers\n1949-01,112\n", "plain.csv")) == "single"
    assert detect_layout(write(tmp_path, "id,ds,y\na,1,5\nb,1,6\n", "ids.csv"), id_name="id") == "long"
    assert not is_m4_wide(write(tmp_path, '"V1","V2"\n"1","2"\n', "numbers.csv"))  # a numeric V1: no id
    panel = load_long(
        write(tmp_path, "id,t,sales\na,1,5\nb,1,6\na,2,7\nb,2,8\n", "named.csv"), "id", "t", "sales"
    )
    assert (panel.id_name, panel.time_name, panel.ids) == ("id", "t", ["a", "b"])
    assert [s.values.tolist() for s in panel.series] == [[5, 7], [6, 8]]


LONG_ERRORS = [
    (
        "unique_id,ds,y\na,1,5\na,2,6\nb,1,7\n",
        r"line 4 \(series 'b'\): 1 row\(s\); a series needs at least 2 time",
    ),
    (
        "unique_id,ds,y\na,2020-01-01,5\nb,2020-01-01,1\na,2020-01-01,6\n",
        r"line 4 \(series 'a'\): ds '2020-01-01' again \(first at line 2\); a series has one row per time",
    ),
    ("unique_id,ds,y\na,1,5\na,2,6\nb,1,\nb,2,NA\n", r"line 4 \(series 'b'\): no y values, every row"),
    ("unique_id,ds,y\na,1,5\na,2,lots\n", r"line 3 \(series 'a'\), column 'y': 'lots' is not a number"),
    ("unique_id,ds,y\na,1,5\n,2,6\na,3,7\n", r"line 3: empty unique_id; give every row the id of its series"),
    (
        "unique_id,ds,y\na,2020-01,5\na,2020-02,6\nb,2020-01-01,1\nb,2020-01-02,2\n",
        r"line 4 \(series 'b'\): daily steps, but series 'a' \(line 2\) has monthly steps; every series must",
    ),
    ("unique_id,ds,y\na,1,5\na,,6\n", r"line 3 \(series 'a'\): no ds \(time\) value"),
    ("unique_id,ds,y\na,2020-01-01,5\na,soon,6\n", r"line 3 \(series 'a'\), column ds: 'soon' is not a date"),
    ("unique_id,ds,y\na,1,\na,2,\na,3,5\n", r"line 2 \(series 'a'\): 1 step\(s\) from the first"),
    ("unique_id,ds,y\na,1,5\na,2.5,6\n", r"line 3 \(series 'a'\), column 'ds': '2.5' is not a whole number"),
    ("unique_id,ds\na,1\n", r"no column 'y'; the columns are unique_id, ds"),
]


@pytest.mark.parametrize("content,message", LONG_ERRORS)
def test_bad_long_files_name_the_series_and_line(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(InputError, match=message) as error:
        load_long(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


WIDE_ERRORS = [
    (
        '"V1","V2","V3","V4"\n"a","1","","3"\n',
        r"line 2 \(series 'a'\), column 'V3': empty, but values follow",
    ),
    ('"V1","V2","V3"\n"a","1","2"\n"b","",""\n', r"line 3 \(series 'b'\): no values after the id"),
    ('"V1","V2","V3"\n"a","1","x"\n', r"line 2 \(series 'a'\), column 'V3': 'x' is not a number"),
    ('"V1","V2","V3"\n"a","1",""\n', r"line 2 \(series 'a'\): 1 value\(s\); a series needs at least 2"),
    ('"V1","V2","V3"\n"a","1","2"\n"","1","2"\n', r"line 3: empty series id in column V1"),
    ('"V1","V2","V3"\n"a","1","2"\n"a","3","4"\n', r"line 3: series 'a' again \(first at line 2\)"),
    ('"id","V2","V3"\n"a","1","2"\n', r"not the M4 wide layout"),
]


@pytest.mark.parametrize("content,message", WIDE_ERRORS)
def test_bad_wide_files_name_the_series_line_and_column(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(InputError, match=message) as error:
        load_m4_wide(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_m4_test_file_with_other_series(tmp_path):
    train = write(tmp_path, '"V1","V2","V3"\n"a","1","2"\n"b","3","4"\n', "train.csv")
    other = write(tmp_path, '"V1","V2"\n"a","5"\n"c","6"\n', "test.csv")
    with pytest.raises(
        InputError, match=r"test\.csv, line 3: series 'c' where .*train\.csv has 'b' \(line 3\)"
    ):
        load_m4_pair(train, other)
    fewer = write(tmp_path, '"V1","V2"\n"a","5"\n', "fewer.csv")
    with pytest.raises(
        InputError, match=r"fewer\.csv: 1 series but .*train\.csv has 2; the first without a match is 'b'"
    ):
        load_m4_pair(train, fewer)
