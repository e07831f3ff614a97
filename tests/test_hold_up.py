"""Bad input never gives a traceback: through the real command line, every kind of bad input the issue
lists, for every task, is one line on stderr naming the file (and line or column) or the option, with
exit status 2; and random bytes and random CSV shapes fed to every reader give a result or InputError."""

from __future__ import annotations

import contextlib
import json
import shutil
import string
import tempfile
from pathlib import Path

import pytest
from conftest import DATA
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lstmkit import datasets
from lstmkit.cli import main
from lstmkit.data.labelled_text import read_class_files, read_folder, read_text_table
from lstmkit.data.sequences import read_series
from lstmkit.data.text import load_bundled_text, read_corpus, read_text
from lstmkit.data.timeseries import load_series
from lstmkit.errors import InputError
from lstmkit.train.checkpoint import CONFIG_FILE, MODEL_FILE, STATE_FILE, load_tensors, read_json

AIR = datasets.path("airline-passengers.csv")
TINY_CHARLM = [
    "--hidden-size",
    "8",
    "--layers",
    "1",
    "--embed-size",
    "4",
    "--seq-len",
    "16",
    "--batch-size",
    "4",
]
TINY_TEXT = ["--encoding", "cp1252", "--hidden-size", "4", "--embed-size", "4"]


def exit_status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit:  # argparse's usage errors
        return exit.code


@pytest.fixture(scope="module")
def w(tmp_path_factory) -> Path:
    """Bad files, good slices of the test data, and a trained model directory of each task."""
    w = tmp_path_factory.mktemp("hold_up")
    (w / "empty.txt").write_bytes(b"")
    (w / "binary.bin").write_bytes(b"text at first\n" + bytes(range(256)))
    (w / "utf16.txt").write_text("hello world\n" * 50, encoding="utf-16")
    (w / "slice.txt").write_text(load_bundled_text()[:20_000])
    months = [f"{1950 + i // 12}-{i % 12 + 1:02d}" for i in range(60)]
    (w / "nocol.csv").write_text("Month,Pass\n1949-01,112\n1949-02,118\n")
    (w / "nonnum.csv").write_text(
        "Month,Passengers\n" + "".join(f"{m},{100 + i}\n" for i, m in enumerate(months))
    )
    (w / "nonnum.csv").write_text((w / "nonnum.csv").read_text().replace(",130\n", ",abc\n"))
    (w / "short.csv").write_text(
        "Month,Passengers\n" + "".join(f"{m},{100 + i}\n" for i, m in enumerate(months[:8]))
    )
    (w / "ragged.csv").write_text("Month,Passengers\n1949-01,112\n1949-02,118,3\n1949-03,1\n")
    (w / "oneclass.tsv").write_text("".join(f"a review, number {i}\tpos\n" for i in range(20)))
    (w / "ragged.tsv").write_text("".join(f"review {i}\tpos\n" for i in range(5)) + "a\tb\tc\nx\tneg\n")
    (w / "oneclass.txt").write_text(
        "".join(f"1 {' '.join(f'0.{i}{j}' for j in range(20))}\n" for i in range(10))
    )
    (w / "ragged.txt").write_text("1 1 2 3\n-1 2 3\n1 3 4 5\n")
    (w / "nonnum.txt").write_text("1 1 2 3\n-1 2 x 3\n1 3 4 5\n-1 1 1 1\n")
    ecg = (DATA / "ucr" / "BEATS_TRAIN.txt").read_text().splitlines()
    (w / "ecg.txt").write_text("\n".join(ecg[:30]) + "\n")
    for name in ("pos", "neg"):
        lines = (DATA / "reviews" / f"reviews.{name}").read_bytes().split(b"\n")[:60]
        (w / f"{name}.txt").write_bytes(b"\n".join(lines))
    trainings = {
        "cm": ["charlm", "train", str(w / "slice.txt"), *TINY_CHARLM],
        "fc": ["forecast", "train", str(AIR), "--target", "Passengers", "--horizon", "2"],
        "se": ["sentiment", "train", "--pos", str(w / "pos.txt"), "--neg", str(w / "neg.txt"), *TINY_TEXT],
        "cl": ["classify", "train", str(w / "ecg.txt"), "--hidden-size", "4"],
    }
    for name, argv in trainings.items():
        assert main([*argv, "--epochs", "1", "--out", str(w / name)]) == 0
        damaged = shutil.copytree(w / name, w / f"{name}_trunc")  # both files cut short
        for file in (STATE_FILE, MODEL_FILE):
            (damaged / file).write_bytes((w / name / file).read_bytes()[:300])
        config = json.loads((w / name / CONFIG_FILE).read_text())
        shutil.copytree(w / name, w / f"{name}_keyless")
        keyless = {key: config[key] for key in ("task", "lstmkit_version", "layout")}
        (w / f"{name}_keyless" / CONFIG_FILE).write_text(json.dumps(keyless))
        shutil.copytree(w / name, w / f"{name}_resized")  # the config of a larger model
        bigger = {**config, "hyperparameters": {**config["hyperparameters"], "hidden_size": 5}}
        if config["fitted"].get("hidden_size"):  # the forecaster's size, chosen from the data
            bigger["fitted"] = {**config["fitted"], "hidden_size": 5}
        (w / f"{name}_resized" / CONFIG_FILE).write_text(json.dumps(bigger))
    return w


# (arguments with {w} for the work directory, what the one line must contain)
CASES = {
    # a missing or empty file, bytes that are not text
    "charlm missing": ("charlm train {w}/nope.txt --out {w}/o", "nope.txt: no such file"),
    "charlm empty": ("charlm train {w}/empty.txt --out {w}/o", "empty.txt: the file is empty"),
    "charlm binary": (
        "charlm train {w}/binary.bin --out {w}/o",
        "binary.bin: not UTF-8 text (byte 0x80 at offset 142) on line 3",
    ),
    "charlm utf16": (
        "charlm train {w}/utf16.txt --out {w}/o",
        "utf16.txt: not UTF-8 text (byte 0xff at offset 0)",
    ),
    "charlm eval binary": ("charlm eval {w}/cm {w}/binary.bin", "binary.bin: not UTF-8 text"),
    "forecast missing": (
        "forecast train {w}/nope.csv --target x --horizon 1 --out {w}/o",
        "nope.csv: no such",
    ),
    "forecast empty": (
        "forecast train {w}/empty.txt --target x --horizon 1 --out {w}/o",
        "empty.txt: the file is",
    ),
    "forecast binary": (
        "forecast train {w}/binary.bin --target x --horizon 1 --out {w}/o",
        "binary.bin, line 3: not UTF-8",
    ),
    "sentiment missing": ("sentiment train {w}/nope.tsv --out {w}/o", "nope.tsv: no such file"),
    "sentiment empty": (
        "sentiment train --pos {w}/pos.txt --neg {w}/empty.txt --out {w}/o",
        "empty.txt: the file",
    ),
    "sentiment binary": ("sentiment train {w}/binary.bin --out {w}/o", "binary.bin: line 3, byte 118: 0x80"),
    "sentiment predict binary": (
        "sentiment predict {w}/se --file {w}/binary.bin",
        "binary.bin: line 3, byte",
    ),
    "classify missing": ("classify train {w}/nope.txt --out {w}/o", "nope.txt: no such file"),
    "classify empty": ("classify train {w}/empty.txt --out {w}/o", "empty.txt: the file is empty"),
    "classify utf16": ("classify train {w}/utf16.txt --out {w}/o", "utf16.txt: line 1, byte 1: 0xff is not"),
    "classify predict missing": ("classify predict {w}/cl {w}/nope.txt", "nope.txt: no such file"),
    # a missing column, non-numeric values
    "forecast no target": (
        "forecast train {w}/nocol.csv --target Passengers --horizon 1 --out {w}/o",
        "no column",
    ),
    "forecast no feature": (
        f"forecast train {AIR} --target Passengers --features Foo --horizon 1 --out {{w}}/o",
        "'Foo'",
    ),
    "forecast predict no column": (
        "forecast predict {w}/fc {w}/nocol.csv",
        "nocol.csv: no column 'Passengers'",
    ),
    "sentiment no column": (
        "sentiment train {w}/oneclass.tsv --text-column review --out {w}/o",
        "no column 'review'",
    ),
    "classify no column": ("classify train {w}/ecg.txt --label-column kind --out {w}/o", "no column 'kind'"),
    "forecast not a number": (
        "forecast train {w}/nonnum.csv --target Passengers --horizon 1 --out {w}/o",
        "nonnum.csv, line 32, column 'Passengers': 'abc' is not a number",
    ),
    "classify not a number": (
        "classify train {w}/nonnum.txt --out {w}/o",
        "line 2, column 3: 'x' is not a finite",
    ),
    # a series shorter than window plus horizon
    "forecast short": (
        "forecast train {w}/short.csv --target Passengers --window 6 --horizon 1 --out {w}/o",
        "short.csv: 8 steps are too few for window 6",
    ),
    "forecast predict short": ("forecast predict {w}/fc {w}/short.csv", "short.csv: 8 steps are too few"),
    # a single class, ragged rows
    "sentiment one class": ("sentiment train {w}/oneclass.tsv --out {w}/o", "only the class 'pos'"),
    "classify one class": ("classify train {w}/oneclass.txt --out {w}/o", "only the class '1'"),
    "sentiment ragged": ("sentiment train {w}/ragged.tsv --out {w}/o", "ragged.tsv: line 6 has 3 fields"),
    "classify ragged": ("classify train {w}/ragged.txt --out {w}/o", "ragged.txt: line 2 has 3 fields"),
    "forecast ragged": (
        "forecast train {w}/ragged.csv --target Passengers --horizon 1 --out {w}/o",
        "line 3: 3 fields",
    ),
    # a corrupt or truncated checkpoint
    "charlm resume truncated": (
        "charlm train {w}/slice.txt " + " ".join(TINY_CHARLM) + " --out {w}/cm_trunc --resume",
        "cm_trunc/checkpoint.safetensors: not a readable checkpoint (truncated or corrupt",
    ),
    "forecast resume truncated": (
        f"forecast train {AIR} --target Passengers --horizon 2 --out {{w}}/fc_trunc --resume",
        "fc_trunc/checkpoint.safetensors: not a readable checkpoint",
    ),
    "classify resume truncated": (
        "classify train {w}/ecg.txt --out {w}/cl_trunc --resume",
        "not a readable checkpoint",
    ),
    "charlm sample truncated": (
        "charlm sample {w}/cm_trunc",
        "cm_trunc/model.safetensors: not a readable checkpoint",
    ),
    "forecast predict truncated": (
        f"forecast predict {{w}}/fc_trunc {AIR}",
        "model.safetensors: not a readable",
    ),
    "sentiment predict truncated": (
        "sentiment predict {w}/se_trunc good",
        "model.safetensors: not a readable",
    ),
    "classify predict truncated": (
        "classify predict {w}/cl_trunc {w}/ecg.txt",
        "model.safetensors: not a readable",
    ),
    "charlm config without keys": (
        "charlm sample {w}/cm_keyless",
        "cm_keyless/config.json: has no 'hyperparameters'",
    ),
    "forecast config without keys": (
        f"forecast predict {{w}}/fc_keyless {AIR}",
        "config.json: has no 'hyperparameters'",
    ),
    "classify config without keys": (
        "classify predict {w}/cl_keyless {w}/ecg.txt",
        "config.json: has no 'hyperparameters'",
    ),
    "charlm weights unlike config": (
        "charlm sample {w}/cm_resized",
        "model.safetensors does not fit config.json",
    ),
    "sentiment weights unlike config": ("sentiment predict {w}/se_resized good", "does not fit config.json"),
    "charlm resume other size": (
        "charlm train {w}/slice.txt " + " ".join(TINY_CHARLM[2:]) + " --hidden-size 9 --out {w}/cm --resume",
        "cm/checkpoint.safetensors: the checkpoint does not match this run (Error(s) in loading state_dict",
    ),
    # a checkpoint from another task
    "charlm resume in forecast dir": (
        "charlm train {w}/slice.txt " + " ".join(TINY_CHARLM) + " --out {w}/fc --resume",
        "fc/checkpoint.safetensors: a checkpoint of another task (ForecastJob, not CharLMJob)",
    ),
    "sentiment resume in classify dir": (
        "sentiment train --pos {w}/pos.txt --neg {w}/neg.txt "
        + " ".join(TINY_TEXT)
        + " --out {w}/cl --resume",
        "cl/checkpoint.safetensors: the checkpoint does not match this run",
    ),
    "charlm sample forecast model": ("charlm sample {w}/fc", "holds a 'forecast' model, not a 'charlm' one"),
    "classify predict sentiment model": ("classify predict {w}/se {w}/ecg.txt", "holds a 'sentiment' model"),
    # options out of range
    "horizon 0": (
        f"forecast train {AIR} --target Passengers --horizon 0 --out {{w}}/o",
        "argument --horizon: must",
    ),
    "test size 1.5": (
        f"forecast train {AIR} --target Passengers --horizon 1 --test-size 1.5 --out {{w}}/o",
        "fraction",
    ),
    "season too long": (
        f"forecast train {AIR} --target Passengers --horizon 1 --season 500 --out {{w}}/o",
        "--season",
    ),
    "forecast window too long": (
        f"forecast train {AIR} --target Passengers --horizon 1 --window 500 --out {{w}}/o",
        "144 steps are too few for window 500",
    ),
    "predict horizon beyond": (f"forecast predict {{w}}/fc {AIR} --horizon 5", "--horizon 5 is out of range"),
    "classify window too long": (
        "classify train {w}/ecg.txt --window 97 --out {w}/o",
        "--window 97 is longer",
    ),
    "lr negative": (
        "charlm train {w}/slice.txt --lr -1 --out {w}/o",
        "argument --lr: must be a positive number",
    ),
    "clip negative": (
        "charlm train {w}/slice.txt --clip -1 --out {w}/o",
        "argument --clip: must be a number >= 0",
    ),
    "weight decay nan": (
        "classify train {w}/ecg.txt --weight-decay nan --out {w}/o",
        "argument --weight-decay",
    ),
    "epochs 0": (
        "sentiment train {w}/ragged.tsv --epochs 0 --out {w}/o",
        "argument --epochs: must be a whole",
    ),
    "seed too large": (
        "forecast train x --target y --horizon 1 --seed 4294967296 --out {w}/o",
        "argument --seed",
    ),
    "folds 1": (
        "sentiment train {w}/ragged.tsv --folds 1 --out {w}/o",
        "argument --folds: must be a whole number",
    ),
    "dropout 1": (
        "charlm train {w}/slice.txt --dropout 1 --out {w}/o",
        "argument --dropout: must be a number",
    ),
    "batch larger than text": (
        "charlm train {w}/slice.txt --batch-size 4000 --out {w}/o",
        "characters are too few",
    ),
    "temperature negative": ("charlm sample {w}/cm --temperature -1", "argument --temperature"),
    "out is a file": (
        "charlm train {w}/slice.txt --out {w}/slice.txt",
        "slice.txt exists and is not a directory",
    ),
    "unknown encoding": (
        "sentiment train --pos {w}/pos.txt --neg {w}/neg.txt --encoding klingon --out {w}/o",
        "klingon",
    ),
}


@pytest.mark.parametrize("command,message", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_naming_it_and_exit_2(w, capsys, command, message):
    capsys.readouterr()
    assert exit_status(command.format(w=w).split()) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert message in err


def test_nothing_written_before_is_damaged(w):
    """A failed --resume leaves the directory's files as they were."""
    before = {p.name: p.read_bytes() for p in (w / "fc").iterdir()}
    assert exit_status(f"charlm train {w}/slice.txt --out {w}/fc --resume".split()) == 2
    assert {p.name: p.read_bytes() for p in (w / "fc").iterdir()} == before


# ---- property tests: every reader returns or raises InputError, whatever the bytes -----------------------
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CELLS = st.sampled_from(
    [
        "1",
        "-2.5",
        "0",
        "1e400",
        "nan",
        "NA",
        "",
        " ",
        "x",
        "pos",
        "neg",
        "1949-01",
        "1949-02",
        "2010-01-02 13:00",
    ]
    + ['"a, b"', '"', "é", "\t", '"a\nb"']
)


@st.composite
def tables(draw) -> bytes:
    """A delimited table of random shape: 0-7 rows of 1-5 cells, maybe ragged, maybe with a header line."""
    delimiter = draw(st.sampled_from([",", "\t", ";", " "]))
    width = draw(st.integers(1, 5))
    rows = [[draw(CELLS) for _ in range(draw(st.sampled_from([width, width, width, width + 1])))]]
    rows += [[draw(CELLS) for _ in range(width)] for _ in range(draw(st.integers(0, 6)))]
    if draw(st.booleans()):
        names = st.sampled_from(["Month", "value", "label", "text", "x"])
        rows.insert(0, draw(st.lists(names, min_size=width, max_size=width)))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(delimiter.join(row) for row in rows).encode() + draw(st.sampled_from([b"", b"\n"]))


CONTENTS = st.one_of(st.binary(max_size=200), tables())


def only_input_errors(read, content: bytes, name: str = "data.csv") -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        try:
            read(path)
        except InputError as error:
            assert len(str(error).splitlines()) == 1 and str(error).strip()


@FEW
@given(CONTENTS)
def test_text_readers(content):
    only_input_errors(read_text, content, "text.txt")
    only_input_errors(read_corpus, content, "text.txt")


@FEW
@given(CONTENTS, st.sampled_from([None, "1", "2", "label"]), st.sampled_from([None, "1", "text"]))
def test_labelled_text_readers(content, label_column, text_column):
    only_input_errors(lambda path: read_text_table(path, text_column, label_column), content, "data.tsv")
    only_input_errors(lambda path: read_class_files({"a": path, "b": path}), content, "a.txt")


@FEW
@given(st.lists(CONTENTS, min_size=1, max_size=3))
def test_folder_reader(contents):
    with tempfile.TemporaryDirectory() as folder:
        for index, content in enumerate(contents):
            (Path(folder) / string.ascii_lowercase[index % 2]).mkdir(exist_ok=True)
            (Path(folder) / string.ascii_lowercase[index % 2] / f"{index}.txt").write_bytes(content)
        with contextlib.suppress(InputError):
            read_folder(Path(folder))


@FEW
@given(CONTENTS, st.sampled_from([None, "1", "label"]), st.sampled_from([None, 3]))
@example(b"\x1c", None, None)  # whitespace to str.split, not to bytes.strip: no rows at all
def test_series_reader(content, label_column, length):
    only_input_errors(lambda path: read_series(path, label_column, None, length), content)


@FEW
@given(CONTENTS, st.sampled_from(["value", "x", "Month"]), st.sampled_from([None, [], ["Month"]]))
@example(b'"\x00\n"\x00\n\x00', "value", None)  # a line break inside a header name, named in the message
def test_time_series_reader(content, target, time):
    only_input_errors(lambda path: load_series(path, target, time, ["x"] if target != "x" else []), content)


@FEW
@given(st.binary(max_size=300))
def test_checkpoint_readers(content):
    only_input_errors(load_tensors, content, STATE_FILE)
    only_input_errors(read_json, content, CONFIG_FILE)
