"""`lstmkit demo` end to end, and its handling of bad input."""

import json
import re
import subprocess
import sys
from importlib.metadata import version

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit.cli import main
from lstmkit.tasks.demo import SENTENCE


def test_demo_trains_reports_and_writes_its_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["demo", "--seconds", "3", "--out", str(out), "--seed", "1"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert printed.count("validation loss:") == 2 and "<- full stop" in printed
    assert (
        "training done |" in captured.err
    )  # the progress report (lines: stderr is no terminal) ran to its end
    for name in ("gates.html", "gates.png", "gates-summary.png", "trace.json", "samples.txt"):
        assert f"{out / name}: " in printed, name  # says where everything is
    assert f"lstmkit inspect {out} " in printed

    before, after = (float(line.split()[2]) for line in printed.splitlines() if "validation loss:" in line)
    assert after < before  # even a few seconds of training lowers the loss

    samples = (out / "samples.txt").read_text(encoding="utf-8")
    assert "before training" in samples and "after 3 s of training" in samples

    trace = json.loads((out / "trace.json").read_text(encoding="utf-8"))
    assert trace["tokens"] == list(SENTENCE) and trace["rows"] == ["layer 1", "layer 2"]
    for name in ("input_gate", "forget_gate", "output_gate", "candidate", "cell", "hidden"):
        values = torch.tensor(trace["values"][name])
        assert values.shape == (2, len(SENTENCE), trace["hidden_size"]), name
    for name in ("input_gate", "forget_gate", "output_gate"):
        values = torch.tensor(trace["values"][name])
        assert ((values > 0) & (values < 1)).all(), name
    assert (torch.tensor(trace["values"]["candidate"]).abs() < 1).all()

    lm = lstmkit.CharLM.load(out)  # the saved model gives the same trace as the demo wrote
    with torch.no_grad():
        _, _, again = lm.network(lm.vocab.encode(SENTENCE).view(1, -1), return_trace=True)
    torch.testing.assert_close(
        again.forget_gate[:, 0],
        torch.tensor(trace["values"]["forget_gate"]),
        atol=1e-6,
        rtol=0,
        check_dtype=False,
    )

    forget = np.array(trace["values"]["forget_gate"][1])  # the last layer: (T, H)
    stops = [i for i, char in enumerate(SENTENCE) if char == "."]
    unit = int(re.search(r"Unit (\d+) is the unit whose forget gate drops most", printed).group(1))
    drops = np.delete(forget, stops, axis=0).mean(axis=0) - forget[stops].mean(axis=0)  # (H,)
    assert unit == int(drops.argmax())
    page = (out / "gates.html").read_text(encoding="utf-8")
    assert f'"start_unit":{unit},' in page and f'"start_step":{stops[0]},' in page and '"start_row":1' in page
    leftovers = sorted(path.name for path in out.iterdir())
    expected = [
        "checkpoint.safetensors",
        "config.json",
        "loss_curve.png",
        "metrics.json",
        "model.safetensors",
    ]
    gates = ["gates-summary.png", "gates.html", "gates.png"]
    assert leftovers == sorted(expected + gates + ["samples.txt", "trace.json"])  # no temporary files left


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
    for flag in (
        "--out DIR",
        "--seconds S",
        "--seed N",
        "trace.json",
        "full stop",
        "gates.png",
        "gates.html",
    ):
        assert flag in help_text
