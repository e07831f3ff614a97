"""`lstmkit inspect DIR TEXT`: the gates of a trained model while it reads TEXT, as pictures, HTML or JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from lstmkit.errors import InputError


def add_commands(commands) -> None:
    """Register `lstmkit inspect`."""
    inspect = commands.add_parser("inspect", help="show a trained model's gates while it reads a text")
    inspect.add_argument("model_dir", metavar="DIR", type=Path, help="a model directory from any 'train'")
    inspect.add_argument("text", metavar="TEXT", help="what the model reads")
    inspect.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    raise InputError("lstmkit inspect is being written; try again later")
