"""The README's API tour runs as written, and its shape comments hold."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tour_runs():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    assert tuple(namespace["output"].shape) == (4, 50, 64)
    assert tuple(namespace["h_n"].shape) == (4, 4, 32)
    assert tuple(namespace["trace"].forget_gate.shape) == (4, 4, 50, 32)
    assert namespace["lstmkit"].backends()[-1] == "reference"
