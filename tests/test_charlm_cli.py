"""`lstmkit charlm train|sample|eval` end to end on a slice of tinyshakespeare, bad input, and --resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lstmkit.cli import main
from lstmkit.data.text import load_bundled_text

SMALL = ["--hidden-size", "32", "--layers", "1", "--embed-size", "8", "--seq-len", "32", "--batch-size", "8"]


def exit_status(argv: list[str]) -> int:
    """main's status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "slice.txt"
    path.write_text(load_bundled_text()[:40_000])  # tinyshakespeare, bundled with the package
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "model"
    assert (
        main(["charlm", "train", str(corpus), "--out", str(out), *SMALL, "--epochs", "2", "--lr", "1e-2"])
        == 0
    )
    return out


def test_train_writes_the_model_and_a_report_that_learned(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert {"val_loss", "val_bpc", "world_size", "seed", "wall_time_s", "lstmkit_version"} <= set(metrics)
    uniform = math.log(len(json.loads((trained / "config.json").read_text())["fitted"]["chars"]) + 1)
    assert metrics["val_loss"] < uniform - 0.5  # two epochs on 36,000 characters already beat guessing
    assert metrics["val_bpc"] == pytest.approx(metrics["val_loss"] / math.log(2))
    training = metrics["training"]
    assert training["steps"] == 2 * 141 and training["stopped"] == "trained 2 epochs"  # 35,999 // 8 // 32 + 1
    assert (trained / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_on_the_validation_text_reproduces_the_reported_loss(trained, corpus, tmp_path, capsys):
    validation = tmp_path / "val.txt"
    validation.write_text(corpus.read_text()[36_000:])  # the last 10%
    assert main(["charlm", "eval", str(trained), str(validation)]) == 0
    printed = capsys.readouterr().out
    reported = json.loads((trained / "metrics.json").read_text())["val_loss"]
    assert f"loss {reported:.3f} nats/char" in printed


def test_sample_is_reproducible_and_starts_with_the_prompt(trained, capsys):
    args = ["charlm", "sample", str(trained), "--prompt", "ROMEO:", "--length", "60", "--seed", "3"]
    assert main(args) == 0 and main(args) == 0
    first, second = capsys.readouterr().out.split("ROMEO:")[1:]
    assert first == second and len(first.rstrip("\n")) >= 50


def test_resume_continues_to_the_new_epoch_count(corpus, tmp_path):
    out = tmp_path / "resumed"
    assert main(["charlm", "train", str(corpus), "--out", str(out), *SMALL, "--epochs", "1"]) == 0
    assert main(["charlm", "train", str(corpus), "--out", str(out), *SMALL, "--epochs", "2", "--resume"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["steps"] == 2 * 141


@pytest.mark.parametrize(
    "make_args,message",
    [
        (lambda d: ["train", str(d / "missing.txt"), "--out", str(d / "o")], "missing.txt: no such file"),
        (
            lambda d: ["train", str(d / "latin1.txt"), "--out", str(d / "o")],
            "not UTF-8 text (byte 0xe9 at offset 3)",
        ),
        (lambda d: ["train", str(d / "short.txt"), "--out", str(d / "o")], "characters are too few"),
        (
            lambda d: ["train", str(d / "short.txt"), "--out", str(d / "short.txt")],
            "exists and is not a directory",
        ),
        (lambda d: ["sample", str(d)], "no such file"),
        (
            lambda d: ["eval", str(d / "other"), str(d / "short.txt")],
            "holds a 'forecast' model, not a 'charlm' one",
        ),
        (
            lambda d: ["train", str(d / "short.txt"), "--out", str(d / "o"), "--lr", "-1"],
            "must be a positive number",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, make_args, message):
    (tmp_path / "latin1.txt").write_bytes("café au lait".encode("latin-1"))
    (tmp_path / "short.txt").write_text("To be or not to be")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"task": "forecast"}')
    assert exit_status(["charlm", *make_args(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
