"""The README's API tour runs as written, and its shape comments hold."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from lstmkit.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tour_runs():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    assert tuple(namespace["output"].shape) == (4, 50, 64)
    assert tuple(namespace["h_n"].shape) == (4, 4, 32)
    assert tuple(namespace["trace"].forget_gate.shape) == (4, 4, 50, 32)
    assert namespace["lstmkit"].backends()[-1] == "reference"


def test_readme_pictures_exist_and_inspect_commands_parse():
    text = README.read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert "docs/demo-gates.png" in pictures
    for picture in pictures:
        assert (README.parent / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture
    commands = [line.split(" > ")[0] for line in text.splitlines() if line.startswith("lstmkit inspect ")]
    assert len(commands) >= 4
    for command in commands:
        args = build_parser().parse_args(shlex.split(command)[1:])  # exits (fails) on a bad option
        assert args.out or args.json, command
