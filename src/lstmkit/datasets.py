"""Small data sets that ship with lstmkit (what their licences allow), for examples, the README and the demo.

lstmkit.datasets.airline()       # the airline passengers, monthly 1949-1960 (Box & Jenkins), a DataFrame
lstmkit.datasets.shakespeare()   # tinyshakespeare (public domain), a str
lstmkit.datasets.path(NAME)      # the file itself, for the command line
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lstmkit.data.text import load_bundled_text

FILES = ("airline-passengers.csv", "tinyshakespeare.txt")


def path(name: str) -> Path:
    """The bundled file NAME (one of FILES)."""
    if name not in FILES:
        raise ValueError(f"no bundled file {name!r}; there are {', '.join(FILES)}")
    return Path(str(resources.files("lstmkit") / "bundled" / name))


def airline():
    """Monthly airline passengers in thousands, 1949-01 to 1960-12: a DataFrame with columns Month
    (datetime) and Passengers, read from the file as published (CRLF, quoted months)."""
    import pandas as pd

    return pd.read_csv(path("airline-passengers.csv"), parse_dates=["Month"])


def shakespeare() -> str:
    """The tinyshakespeare text (about 1.1 M characters) as one string."""
    return load_bundled_text("tinyshakespeare.txt")
