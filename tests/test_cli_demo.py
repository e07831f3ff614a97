"""`lstmkit demo` end to end, and its handling of bad input."""

import json
import subprocess
import sys
from importlib.metadata import version

import pytest
import torch

from lstmkit.cli import main
from lstmkit.tasks.demo import SENTENCE


def test_demo_trains_reports_and_writes_its_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["demo", "--seconds", "3", "--out", str(out), "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("validation loss:") == 2 and "<- full stop" in printed
    assert str(out / "trace.json") in printed and str(out / "samples.txt") in printed

    before, after = (float(line.split()[2]) for line in printed.splitlines() if "validation loss:" in line)
    assert after < before  # even a few seconds of training lowers the loss

    samples = (out / "samples.txt").read_text(encoding="utf-8")
    assert "before training" in samples and "after 3 s of training" in samples

    trace = json.loads((out / "trace.json").read_text(encoding="utf-8"))
    assert trace["chars"] == list(SENTENCE)
    for name in ("input_gate", "forget_gate", "output_gate", "candidate", "cell", "hidden"):
        values = torch.tensor(trace[name])
        assert values.shape == (len(SENTENCE), trace["hidden_size"]), name
    for name in ("input_gate", "forget_gate", "output_gate"):
        values = torch.tensor(trace[name])
        assert ((values > 0) & (values < 1)).all(), name
    assert (torch.tensor(trace["candidate"]).abs() < 1).all()
    leftovers = sorted(path.name for path in out.iterdir())
    expected = [
        "checkpoint.safetensors",
        "config.json",
        "loss_curve.png",
        "metrics.json",
        "model.safetensors",
    ]
    assert leftovers == sorted(expected + ["samples.txt", "trace.json"])  # no temporary files left behind


def test_negative_seconds_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lstmkit", "demo", "--seconds", "-1", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "--seconds" in result.stderr and "-1" in result.stderr
    assert not (tmp_path / "run").exists()


def test_out_path_that_is_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me\n")
    assert main(["demo", "--seconds", "1", "--out", str(existing)]) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and "notes.txt" in error and "not a directory" in error
    assert existing.read_text() == "keep me\n"


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"lstmkit {version('lstmkit')}"

    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for flag in ("--out DIR", "--seconds S", "--seed N", "trace.json", "full stop"):
        assert flag in help_text
