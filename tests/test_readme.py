"""The README's and docs' examples run as written, their shape comments hold, their pictures exist and the
commands they show parse."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README, DOCS = ROOT / "README.md", ROOT / "docs"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def test_readme_python_runs_and_its_comments_hold(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the tour saves runs/air
    namespace: dict = {}
    for block in python_blocks(README):
        exec(compile(block, str(README), "exec"), namespace)
    scores, future, record = namespace["scores"], namespace["future"], namespace["record"]
    assert scores["mase"] < scores["baselines"]["seasonal_naive"]["mase"]  # the LSTM beats the baseline
    assert list(future.columns)[:3] == ["step", "ds", "forecast"] and len(future) == 12
    assert str(future["ds"].iloc[0].date()) == "1961-01-01"
    assert record.tokens[-1] == "432" and len(record.tokens) == namespace["fc"].window  # Dec 1960: 432
    assert (tmp_path / "runs" / "air" / "metrics.json").is_file()
    assert tuple(namespace["output"].shape) == (4, 50, 64)
    assert tuple(namespace["h_n"].shape) == (4, 4, 32)
    assert tuple(namespace["trace"].forget_gate.shape) == (4, 4, 50, 32)


def test_the_layer_tour_runs_and_its_comments_hold():
    block = python_blocks(DOCS / "lstm.md")[0]
    namespace: dict = {}
    exec(compile(block, str(DOCS / "lstm.md"), "exec"), namespace)
    assert tuple(namespace["output"].shape) == (4, 50, 64)
    assert tuple(namespace["trace"].forget_gate.shape) == (4, 4, 50, 32)
    assert tuple(namespace["y_t"].shape) == (4, 32) and tuple(namespace["state"][0].shape) == (2, 4, 32)
    assert namespace["lstmkit"].backends()[-1] == "reference"
    assert np.isfinite(namespace["h"].detach().numpy()).all()


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")
def test_the_pytorch_stack_example_runs():
    pytest.importorskip("onnxscript")
    block = python_blocks(DOCS / "lstm.md")[1]
    namespace: dict = {}
    exec(compile("import torch\nimport lstmkit\n" + block, str(DOCS / "lstm.md"), "exec"), namespace)
    x, model = namespace["x"], namespace["model"]
    torch.testing.assert_close(namespace["program"].module()(x), model(x))
    assert set(namespace["grads"]) == set(namespace["params"])
    assert namespace["y"].dtype == torch.bfloat16


def test_pictures_exist_and_shown_commands_parse():
    for page in [README, *DOCS.glob("*.md")]:
        for picture in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
            assert (page.parent / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", (page, picture)
        for link in re.findall(r"\]\(([^)#:]+\.md)", page.read_text()):
            assert (page.parent / link).is_file(), (page, link)
    commands = [
        line.split(" > ")[0].split("  #")[0]
        for page in DOCS.glob("*.md")
        for line in page.read_text().splitlines()
        if line.startswith("lstmkit inspect ")
    ]
    assert len(commands) >= 4
    for command in commands:
        args = build_parser().parse_args(shlex.split(command)[1:])  # exits (fails) on a bad option
        assert args.out or args.json, command
