"""The archive's `.ts` and `.arff` files: values, dimensions, lengths, missing values, labels; the same model
from a `.ts` file as from the UCR text file it was written from; multivariate and unequal-length training;
bad input as one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import DATA

import lstmkit
from lstmkit.cli import main
from lstmkit.data.sequences import read_series
from lstmkit.errors import InputError

TINY = {"hidden_size": 8, "epochs": 3, "members": 1, "seed": 1, "baselines": False}

TS_HEADER = """# made by hand
% a comment as some of the archive's files write it
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
"""


def write(path, text: str):
    path.write_text(text)
    return path


def test_ts_multivariate_unequal_lengths_and_missing_values(tmp_path):
    path = write(
        tmp_path / "toy.ts",
        TS_HEADER + "1,2,3,4:10,?,30,40:up\n4,3,2:30,20,10:down\n\n5,?,?,8,9:1,2,3,4,5:up\n",
    )
    read = read_series(path)
    assert read.labels == ["up", "down", "up"] and read.lines == [11, 12, 14]
    values = read.values.numpy()  # (N, C, T), NaN after a case's end
    assert values.shape == (3, 2, 5)
    np.testing.assert_allclose(values[0, :, :4], [[1, 2, 3, 4], [10, 20, 30, 40]])  # ? between 10 and 30
    np.testing.assert_allclose(values[2, 0], [5, 6, 7, 8, 9])  # two missing, interpolated
    assert np.isnan(values[0, :, 4]).all() and np.isnan(values[1, :, 3:]).all()
    assert "3 missing values filled" in read.read_as and "2 dimensions" in read.read_as
    assert "3 to 5 steps" in read.read_as


def test_arff_univariate_and_relational_read_as_the_ts_does(tmp_path):
    uni = write(
        tmp_path / "uni.arff",
        "% a comment\n@relation Toy\n@attribute t1 numeric\n@attribute t2 numeric\n@attribute t3 numeric\n"
        "@attribute target {a,b}\n@data\n1,2,3,a\n4,5,?,b\n",
    )
    read = read_series(uni)
    assert read.labels == ["a", "b"]
    np.testing.assert_allclose(read.values[0].numpy(), [[1, 2, 3]])
    np.testing.assert_allclose(read.values[1, 0, :2].numpy(), [4, 5])  # a trailing ? ends the case
    assert torch.isnan(read.values[1, 0, 2])
    multi = write(
        tmp_path / "multi.arff",
        "@relation Toy\n@attribute relationalAtt relational\n  @attribute t1 numeric\n"
        "  @attribute t2 numeric\n@end relationalAtt\n@attribute activity {'walk','run'}\n@data\n"
        "'1,2\\n3,4',walk\n\"5,6\\n7,8\",'run'\n",
    )
    read = read_series(multi)
    assert read.labels == ["walk", "run"]
    np.testing.assert_allclose(read.values.numpy(), [[[1, 2], [3, 4]], [[5, 6], [7, 8]]])
    same = write(tmp_path / "multi.ts", "@classLabel true walk run\n@data\n1,2:3,4:walk\n5,6:7,8:run\n")
    torch.testing.assert_close(read_series(same).values, read.values)


def test_a_ts_file_trains_the_same_model_as_the_ucr_text_file(tmp_path):
    ucr = DATA / "ucr" / "BEATS_TRAIN.txt"
    rows = [line.split() for line in ucr.read_text().splitlines()]
    ts = tmp_path / "BEATS_TRAIN.ts"
    ts.write_text(
        "@problemName Beats\n@univariate true\n@equalLength true\n@classLabel true -1 1\n@data\n"
        + "".join(",".join(row[1:]) + f":{int(float(row[0]))}\n" for row in rows)
    )
    from_text = lstmkit.SeriesClassifier(**TINY).fit(ucr, verbose=False)
    from_ts = lstmkit.SeriesClassifier(**TINY).fit(ts, verbose=False)
    test = DATA / "ucr" / "BEATS_TEST.txt"
    np.testing.assert_array_equal(from_text.predict_proba(test), from_ts.predict_proba(test))
    assert from_ts.class_names == ["-1", "1"]


def ramps(count: int, seed: int, lengths=(40, 40)):
    """Two dimensions: noise, then a ramp that rises (class up) or falls (down); the class is only in the
    second dimension."""
    rng = np.random.default_rng(seed)
    lines, labels = [], []
    for n in range(count):
        length = int(rng.integers(lengths[0], lengths[1] + 1))
        up = n % 2 == 0
        ramp = np.linspace(-1, 1, length) * (1 if up else -1) + 0.1 * rng.standard_normal(length)
        noise = rng.standard_normal(length)
        lines.append(",".join(f"{v:.4f}" for v in noise) + ":" + ",".join(f"{v:.4f}" for v in ramp))
        labels.append("up" if up else "down")
    body = "".join(f"{line}:{label}\n" for line, label in zip(lines, labels))
    return "@classLabel true up down\n@data\n" + body


def test_multivariate_ts_trains_on_every_dimension(tmp_path, capsys):
    train = write(tmp_path / "RAMPS_TRAIN.ts", ramps(60, 0))
    test = write(tmp_path / "RAMPS_TEST.ts", ramps(40, 1))
    out = tmp_path / "ramps"
    args = ["classify", "train", str(train), "--test", str(test), "--out", str(out)]
    assert main([*args, "--hidden-size", "8", "--epochs", "15", "--members", "1", "--window", "8"]) == 0
    printed = capsys.readouterr().out
    assert "ts format, 60 cases, 2 dimensions, 40 steps" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9  # the class is in the second dimension only
    model = lstmkit.load(out)
    assert model.network.lstm.input_size == 2 * 8
    assert main(["classify", "predict", str(out), str(test)]) == 0
    assert f"accuracy {metrics['accuracy']:.4f} on 40 series" in capsys.readouterr().out
    record = model.gates(test, row=2)
    assert "dimension 1 of 2" in record.series_name


def test_unequal_lengths_give_each_case_its_own_steps(tmp_path):
    train = write(tmp_path / "RAGGED.ts", ramps(30, 2, lengths=(20, 44)))
    clf = lstmkit.SeriesClassifier(**TINY, window=8, stride=4).fit(train, verbose=False)
    cases = clf._read(train)
    inputs = clf._windows(clf._scaled(cases.values, cases.lengths))
    steps = [len(x) for x in inputs]
    assert steps == [1 + -(-(int(n) - 8) // 4) for n in cases.lengths]
    assert len(set(steps)) > 1 and not clf.equal_length
    clf.save(tmp_path / "m")
    loaded = lstmkit.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict_proba(train), clf.predict_proba(train), atol=1e-6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("@classLabel true a b\n@data\n1,2,3:c\n", "line 3: class 'c' is not one of the @classLabel classes"),
        ("@classLabel true a b\n@data\n1,x,3:a\n", "line 3, dimension 1, value 2: 'x' is not a number"),
        ("@classLabel true a b\n@data\n1,2:3,4:a\n1,2:b\n", "line 4 has 1 dimensions, line 3 has 2"),
        ("@timeStamps true\n@classLabel true a b\n@data\n(1,2):a\n", "has time stamps"),
        ("@classLabel true a b\n1,2,3:a\n", "line 2: '1,2,3:a' comes before @data"),
        ("@classLabel true a b\n@data\n?,?:a\n1,2:b\n", "line 3: the case has no values"),
        ("@classLabel false\n@data\n1,2,3\n", "has no class labels"),
    ],
)
def test_bad_ts_files_are_one_line_and_exit_2(tmp_path, capsys, text, message):
    path = write(tmp_path / "bad.ts", text)
    assert main(["classify", "train", str(path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    assert message in error and str(path) in error
    assert not (tmp_path / "out").exists()


def test_bad_arff_files_name_the_line(tmp_path):
    path = write(tmp_path / "bad.arff", "@attribute t1 numeric\n@attribute c {a,b}\n@data\n1,z\n")
    with pytest.raises(InputError, match="line 4: class 'z' is not one the class attribute declares"):
        read_series(path)
    path = write(tmp_path / "bad2.arff", "@attribute t1 string\n@attribute c {a,b}\n@data\nx,a\n")
    with pytest.raises(InputError, match="line 1: attribute type 'string'"):
        read_series(path)


ARCHIVE = DATA / "archive"  # cases of the UEA/UCR archive's files as aeon ships them (tests/data/README.md)
ARCHIVE_FILES = (
    "GunPoint_TRAIN.ts",
    "GunPoint_TRAIN.arff",
    "BasicMotions_TRAIN.ts",
    "BasicMotions_TRAIN.arff",
    "JapaneseVowels_TRAIN.ts",
    "PickupGestureWiimoteZ_TRAIN.ts",
)


def test_the_archives_ts_and_arff_files_hold_the_same_cases():
    for name in ("GunPoint_TRAIN", "BasicMotions_TRAIN"):
        ts, arff = read_series(ARCHIVE / f"{name}.ts"), read_series(ARCHIVE / f"{name}.arff")
        torch.testing.assert_close(ts.values, arff.values, equal_nan=True)
        assert ts.labels == arff.labels


@pytest.mark.parametrize("name", ARCHIVE_FILES)
def test_archive_files_read_as_aeon_reads_them(name):
    datasets = pytest.importorskip("aeon.datasets")
    path = ARCHIVE / name
    loader = datasets.load_from_ts_file if path.suffix == ".ts" else datasets.load_from_arff_file
    cases, labels = loader(str(path))
    ours = read_series(path)
    # aeon lower-cases the labels of a .ts file (its tags are read case-blind); lstmkit keeps them as written
    assert [label.lower() for label in ours.labels] == [str(label).lower() for label in labels]
    assert ours.values.shape[:2] == (len(cases), cases[0].shape[0])
    for n, case in enumerate(cases):  # (C, L_n) each; NaN after a shorter case
        length = case.shape[-1]
        np.testing.assert_allclose(ours.values[n, :, :length].numpy(), case, rtol=1e-6, atol=1e-6)
        assert torch.isnan(ours.values[n, :, length:]).all()


def test_an_unequal_length_archive_file_trains_and_reports_its_shape(tmp_path, capsys):
    train = ARCHIVE / "PickupGestureWiimoteZ_TRAIN.ts"
    out = tmp_path / "pickup"
    args = ["classify", "train", str(train), "--out", str(out), "--hidden-size", "8", "--epochs", "2"]
    assert main([*args, "--members", "1", "--test-fraction", "0.3"]) == 0
    printed = capsys.readouterr().out
    assert "ts format, 20 cases, univariate, 53 to 329 steps" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert "1nn_dtw" in metrics["baselines"] and "1nn_euclidean" not in metrics["baselines"]
    assert "MiniRocket skipped: the series have different lengths" in metrics["baseline_notes"]
