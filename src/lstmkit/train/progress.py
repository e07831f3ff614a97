"""Training progress shown as suits where it goes: a live bar on a terminal or in a notebook, one plain line
every few seconds to a pipe or a log file (CI, nohup), nothing when turned off."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

LINE_INTERVAL = 10.0  # seconds between plain lines
MODES = ("auto", "bar", "lines", "off")


def clock(seconds: float) -> str:
    """12:05 or 1:02:05."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def in_notebook() -> bool:
    return "ipykernel" in sys.modules


class Progress:
    """``update(percent, status)`` after every step, ``close()`` at the end.

    mode: "auto" (a bar where ``stream`` is a terminal or in a notebook, else lines), "bar", "lines" or
    "off". A line reads "training 42% | step 340, epoch 2, loss 1.2345, 26,900 chars/s | 3:12 elapsed,
    4:25 left" (the time left extrapolated from the share done), and the last "training done | ...".
    """

    def __init__(self, mode: str = "auto", stream: TextIO | None = None, interval: float = LINE_INTERVAL):
        if mode not in MODES:
            raise ValueError(f"progress must be one of {', '.join(MODES)}, got {mode!r}")
        self.stream = sys.stderr if stream is None else stream
        if mode == "auto":
            mode = "bar" if in_notebook() or self.stream.isatty() else "lines"
        self.mode, self.interval = mode, interval
        self.started = self.last_line = time.monotonic()
        self.percent, self.status = 0.0, ""
        self.bar = None
        if mode == "bar":
            if in_notebook():
                from tqdm.auto import tqdm as notebook_tqdm

                bar_class = notebook_tqdm
            else:
                bar_class = tqdm
            bar_format = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"
            self.bar = bar_class(total=100.0, desc="training", bar_format=bar_format, file=self.stream)

    def update(self, percent: float, status: str) -> None:
        self.percent, self.status = percent, status
        if self.bar is not None:
            self.bar.set_postfix_str(status, refresh=False)
            self.bar.update(percent - self.bar.n)
        elif self.mode == "lines" and time.monotonic() - self.last_line >= self.interval:
            self._line()

    def _line(self, done: bool = False) -> None:
        self.last_line = now = time.monotonic()
        elapsed = now - self.started
        where = "done" if done else f"{self.percent:3.0f}%"
        left = ""
        if self.percent > 0 and not done:
            left = f", {clock(elapsed * (100 - self.percent) / self.percent)} left"
        print(
            f"training {where} | {self.status} | {clock(elapsed)} elapsed{left}", file=self.stream, flush=True
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.mode == "lines" and self.status:
            self._line(done=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
