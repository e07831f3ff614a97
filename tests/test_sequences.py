"""Numeric series readers on UCR-format files and on small CSVs; z-normalisation; windows."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from conftest import DATA

from lstmkit.data.sequences import label_name, read_series, sliding_windows, z_normalize
from lstmkit.errors import InputError

UCR = DATA / "ucr"


@pytest.mark.parametrize("name", ["BEATS_TRAIN.txt", "BEATS_TEST.txt"])
def test_ucr_rows_labels_and_values(name):
    raw = (UCR / name).read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw  # the old UCR ASCII format: LF, a final newline
    rows = raw.decode("ascii").split("\n")[:-1]
    # the expected labels straight from the first field as a number, not through the reader's label_name
    counts = Counter("1" if float(row.split()[0]) > 0 else "-1" for row in rows)
    assert set(counts) == {"1", "-1"} and all(len(row.split()) == 97 for row in rows)
    series = read_series(UCR / name)
    assert series.values.shape == (len(rows), 96) and series.values.dtype == torch.float32
    assert Counter(series.labels) == counts and series.label_column == 0
    first = (UCR / name).read_text().split("\n")[0].split()
    assert series.labels[0] == label_name(first[0])
    assert series.values[0].tolist() == pytest.approx([float(v) for v in first[1:]])
    assert series.lines == list(range(1, len(rows) + 1))


def test_ucr_rows_without_labels_when_the_length_says_so(tmp_path):
    path = tmp_path / "unlabelled.txt"
    path.write_text("0.5 1.5 2.5\n1 2 3\n")
    series = read_series(path, length=3)
    assert series.labels is None and series.values.tolist() == [[0.5, 1.5, 2.5], [1, 2, 3]]
    labelled = read_series(path, length=2, label_column="1")
    assert labelled.labels == ["0.5", "1"] and labelled.values.tolist() == [[1.5, 2.5], [2, 3]]
    with pytest.raises(InputError, match="has 3 fields; the model reads series of 5 values"):
        read_series(path, length=5)


def test_csv_with_header_and_a_text_label_column_in_the_middle(tmp_path):
    path = tmp_path / "beats.csv"
    path.write_text("t0,t1,diagnosis,t2\n0.1,0.2,normal,0.3\n1,2,abnormal,3\r\n4,5,normal,6\r\n")
    series = read_series(path)
    assert series.label_column == 2 and series.labels == ["normal", "abnormal", "normal"]
    torch.testing.assert_close(series.values, torch.tensor([[0.1, 0.2, 0.3], [1, 2, 3], [4, 5, 6]]))
    assert series.lines == [2, 3, 4]
    assert read_series(path, label_column="diagnosis").labels == series.labels


def test_numeric_label_column_is_the_whole_number_column_with_fewest_values(tmp_path):
    path = tmp_path / "s.tsv"
    rows = [f"{i * 0.5}\t{i % 3}\t{i % 2}\t{i * 1.5}" for i in range(12)]
    path.write_text("\n".join(rows))  # no final newline
    series = read_series(path)
    assert series.label_column == 2 and series.labels == [str(i % 2) for i in range(12)]
    assert series.values.shape == (12, 3)


def test_labels_in_plain_form():
    assert [label_name(x) for x in ("-1.0000000e+00", "1.0000000e+00", "2", " a b ", "0.5")] == [
        "-1",
        "1",
        "2",
        "a b",
        "0.5",
    ]


@pytest.mark.parametrize(
    "content,message",
    [
        (
            "1 0.1 0.2\n-1 0.3\n1 0.5 0.6\n",
            "line 2 has 2 fields, line 1 has 3; every series must have the same length",
        ),
        ("1,0.1,0.2\n-1,0.3\n", "line 2 has 2 fields, line 1 has 3"),
        ("1 0.1 0.2\n\n-1 0.3 abc\n", r"line 3, column 3: 'abc' is not a finite number"),
        ("1 0.1 0.2\n-1 nan 0.4\n", r"line 2, column 2: 'nan' is not a finite number"),
        ("a,b,c\n1,x,0.2\n2,0.1,0.3\n", r"line 2, column 2: 'x' is not a finite number"),
    ],
)
def test_bad_series_files_name_line_and_column(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_series(path, label_column="1")


def test_z_normalisation_per_series_and_fitted_on_training():
    values = torch.tensor([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0]])
    per_series = z_normalize(values, "series")
    assert per_series[0].mean().item() == pytest.approx(0, abs=1e-6)
    assert per_series[0].std(correction=0).item() == pytest.approx(1)
    assert per_series[1].tolist() == [0, 0, 0, 0]  # a constant series has no shape to scale
    assert z_normalize(values, "train", mean=2.0, std=4.0)[0].tolist() == [-0.25, 0, 0.25, 1]
    assert torch.equal(z_normalize(values, "none"), values)


def test_sliding_windows_cover_every_value_and_pad_with_the_last():
    values = torch.arange(10.0).view(1, 10)
    windows = sliding_windows(values, window=4, stride=3)  # (1, 3, 4)
    assert windows[0].tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert sliding_windows(values, window=4, stride=4)[0, -1].tolist() == [8, 9, 9, 9]
    assert sliding_windows(values, window=1, stride=1)[0, :, 0].tolist() == values[0].tolist()
    assert sliding_windows(torch.zeros(2, 96), window=16, stride=4).shape == (2, 21, 16)
