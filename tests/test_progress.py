"""Training progress: a live bar on a terminal, one plain line every few seconds to a pipe or a file."""

from __future__ import annotations

import io

import pytest

from lstmkit.train.progress import Progress, clock


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_plain_lines_at_the_interval_and_a_last_one():
    out = io.StringIO()
    with Progress("auto", out, interval=3600) as progress:  # not a terminal: lines
        for step in range(1, 101):
            progress.update(step / 2, f"step {step}")
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[-1]]  # the interval never passed
    assert out.getvalue().startswith("training done | step 100 | 0:00 elapsed")
    out = io.StringIO()
    with Progress("lines", out, interval=0) as progress:
        progress.update(25.0, "step 1")
        progress.update(50.0, "step 2")
    lines = out.getvalue().splitlines()
    assert [line.split(" | ")[:2] for line in lines] == [
        ["training  25%", "step 1"],
        ["training  50%", "step 2"],
        ["training done", "step 2"],
    ]
    assert lines[0].endswith(" left") and not lines[-1].endswith(" left")


def test_a_terminal_gets_a_bar_and_off_is_silent():
    out = Terminal()
    with Progress("auto", out) as progress:
        progress.update(40.0, "step 7")
    assert "\r" in out.getvalue() and "step 7" in out.getvalue() and "40%" in out.getvalue()
    quiet = Terminal()
    with Progress("off", quiet) as progress:
        progress.update(40.0, "step 7")
    assert quiet.getvalue() == ""
    with pytest.raises(ValueError, match="progress must be one of"):
        Progress("loud")


def test_clock():
    assert [clock(s) for s in (0, 59.6, 61, 3725)] == ["0:00", "1:00", "1:01", "1:02:05"]
