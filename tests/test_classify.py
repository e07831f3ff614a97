"""`lstmkit classify train` and `predict` end to end on UCR-format series and on small CSVs; bad input."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from conftest import DATA

import lstmkit
from lstmkit.cli import main
from lstmkit.models.classifier import SequenceClassifier

TINY = ["--hidden-size", "8", "--epochs", "3", "--seed", "1"]


@pytest.fixture(scope="module")
def ecg_slice():
    """40 training and 30 test series in ECG200's UCR format (96 values a series, labels -1 and 1)."""
    files = DATA / "ucr" / "BEATS_TRAIN.txt", DATA / "ucr" / "BEATS_TEST.txt"
    assert [path.read_bytes().count(b"\n") for path in files] == [40, 30]  # the sizes the tests count on
    return files


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    return error


def test_train_with_a_test_file_then_predict_gives_the_same_accuracy(ecg_slice, tmp_path, capsys):
    train, test = ecg_slice
    out = tmp_path / "ecg"
    assert main(["classify", "train", str(train), "--test", str(test), "--out", str(out), *TINY]) == 0
    assert {"model.safetensors", "config.json", "metrics.json", "loss_curve.png"} <= {
        p.name for p in out.iterdir()
    }
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "classify" and metrics["test_size"] == 30 and metrics["train_size"] == 40
    assert sorted(metrics["per_class"]) == ["-1", "1"] and 0 <= metrics["accuracy"] <= 1
    counts = metrics["confusion_matrix"]["counts"]
    assert metrics["confusion_matrix"]["classes"] == ["-1", "1"] and sum(map(sum, counts)) == 30
    assert metrics["accuracy"] == pytest.approx((counts[0][0] + counts[1][1]) / 30)
    for scores in metrics["per_class"].values():
        assert all(0 <= scores[key] <= 1 for key in ("precision", "recall", "f1"))
    capsys.readouterr()

    assert main(["classify", "predict", str(out), str(test)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[0] == "line\tclass\tprobability" and len(printed) == 32
    rows = [line.split("\t") for line in printed[1:-1]]
    assert [int(line) for line, _, _ in rows] == list(range(1, 31))
    assert all(label in ("-1", "1") and 0.5 <= float(p) <= 1 for _, label, p in rows)
    assert printed[-1] == f"accuracy {metrics['accuracy']:.4f} on 30 series"  # the same model, the same data


def test_held_out_split_and_csv_with_header_and_named_label(tmp_path, capsys):
    generator = torch.Generator().manual_seed(0)
    steps = torch.linspace(0, 4 * math.pi, 24)
    lines = ["kind," + ",".join(f"t{i}" for i in range(24))]
    for i in range(60):  # rising sines against falling ones: easy to tell apart
        kind = "rise" if i % 2 else "fall"
        values = (1 if i % 2 else -1) * steps / 4 + 0.3 * torch.randn(24, generator=generator)
        lines.append(kind + "," + ",".join(f"{v:.4f}" for v in values.tolist()))
    table = tmp_path / "series.csv"
    table.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    args = [
        "classify",
        "train",
        str(table),
        "--label-column",
        "kind",
        "--out",
        str(out),
        "--normalize",
        "train",
    ]
    assert main(args + ["--hidden-size", "8", "--epochs", "15", "--window", "4", "--stride", "4"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_size"] == 12 and metrics["train_size"] == 48  # 20% of each class held out
    assert metrics["accuracy"] >= 0.9  # it learned
    config = json.loads((out / "config.json").read_text())
    hyper, fitted = config["hyperparameters"], config["fitted"]
    assert (
        hyper["normalize"] == "train"
        and fitted["label_column"] == 0
        and fitted["class_names"] == ["fall", "rise"]
    )
    model = lstmkit.load(out).network  # by default one network, the LSTM beside the convolutional branch
    assert type(model) is SequenceClassifier and hyper["members"] == 1
    assert model.conv is not None and model.config["conv_filters"] == hyper["conv_filters"] == 64


@pytest.mark.parametrize(
    "content,extra,message",
    [
        (None, [], r"missing.txt: no such file"),
        ("", [], r"the file is empty"),
        ("1 0.1 0.2\n-1 0.3 0.4\n1 0.5\n", [], r"line 3 has 2 fields, line 1 has 3"),
        ("1 0.1 0.2\n-1 0.3 x\n1 0.5 0.6\n-1 0.7 0.8\n", [], r"line 2, column 3: 'x' is not a finite number"),
        ("1 0.1 0.2\n1 0.3 0.4\n", [], r"only the class '1'"),
        ("a,b,c\n1,0.1,0.2\n-1,0.3,0.4\n", ["--label-column", "label"], r"no column 'label'.*'a', 'b', 'c'"),
    ],
)
def test_bad_training_input_is_one_line_and_exit_2(tmp_path, capsys, content, extra, message):
    path = tmp_path / "missing.txt"
    if content is not None:
        path.write_text(content)
    assert main(["classify", "train", str(path), "--out", str(tmp_path / "out"), *extra]) == 2
    assert re.search(message, one_line_error(capsys))
    assert not (tmp_path / "out").exists()


def test_predict_with_wrong_length_or_another_tasks_model_is_one_line_and_exit_2(ecg_slice, tmp_path, capsys):
    train, _ = ecg_slice
    out = tmp_path / "ecg"
    assert main(["classify", "train", str(train), "--out", str(out), *TINY, "--epochs", "1"]) == 0
    short = tmp_path / "short.txt"
    short.write_text("1 0.1 0.2 0.3\n")
    capsys.readouterr()
    assert main(["classify", "predict", str(out), str(short)]) == 2
    assert "short.txt: line 1 has 4 fields; the model reads series of 96 values" in one_line_error(capsys)
    assert main(["sentiment", "predict", str(out), "a text"]) == 2
    assert "holds a 'classify' model, not a 'sentiment' one" in one_line_error(capsys)
