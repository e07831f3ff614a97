"""`lstmkit inspect DIR TEXT`: the gates of a trained model while it reads TEXT, as pictures, HTML or JSON.

From Python, ``lstmkit.load(DIR).gates(TEXT)`` returns the same record (``inspect_model`` here adds the
directory to its title).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import textwrap
from pathlib import Path

import torch

from lstmkit.config import POSITIVE_INT
from lstmkit.errors import InputError
from lstmkit.files import write_atomic
from lstmkit.plots.record import GateRecord
from lstmkit.tasks import registry
from lstmkit.tasks.estimator import load_estimator
from lstmkit.tasks.registry import Task, register

FORMATS = (".png", ".html", ".json")
DEFAULT_UNITS = 8

DESCRIPTION = """\
Run the model in DIR (the --out directory of any 'lstmkit ... train', or of 'lstmkit demo') on TEXT
and show what its LSTM's gates did at each step: the input gate i, forget gate f, candidate g,
output gate o, cell state c and hidden state h of every layer (and direction), for every unit.

What TEXT is depends on the model's task:
{readers}

Outputs, by the suffix of each --out FILE (repeat --out for several):
  FILE.png   heatmaps of i, f, g, o and c per layer for the units whose gates vary most (or
             --units), the TEXT along the axis; and FILE-summary.png: per gate, the distribution
             of its values and each unit's fraction of saturated steps (below 0.1 or above 0.9),
             which tells integrator units (forget gate always open) from reset units
  FILE.html  one self-contained page: hover or click a step to see every gate's value there, pick
             a unit to colour the text by its activation, and see where that unit is most active
  FILE.json  every value, as --json prints it
--json prints the record (tokens, rows, values[quantity][row][step][unit]) on stdout.

From Python: lstmkit.load(DIR).gates(TEXT), a lstmkit.plots.record.GateRecord."""

EXAMPLES = """\
examples:
  lstmkit inspect lstmkit-demo "Bob is a nice person. Dan, on the other hand, is evil." --out gates.html
  lstmkit inspect runs/shakespeare "ROMEO: What light through yonder window breaks?" --out g.png
  lstmkit inspect mr "a gorgeous, witty, seductive movie." --out words.html --units 3,17
  lstmkit inspect ecg ECG200_TEST.txt --row 5 --out ecg.png
  lstmkit inspect runs/airline airline-passengers.csv --out airline.html
  lstmkit inspect runs/airline 112,118,132,129,121,135,148,148,136,119,104,118 --json > trace.json"""


def unit_list(text: str) -> list[int]:
    """argparse type for --units: whole numbers separated by commas."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"must be unit numbers separated by commas, e.g. 3,17, got {text!r}")
    return [int(part) for part in parts]


def add_commands(parser: argparse.ArgumentParser) -> None:
    """`lstmkit inspect DIR TEXT`; its help says what TEXT is for each task of the registry."""
    readers = "\n".join(
        textwrap.fill(
            f"  {task.name:<10} {task.reads}", 100, subsequent_indent=" " * 13, break_on_hyphens=False
        )
        for task in registry.estimator_tasks()
    )
    parser.description = DESCRIPTION.format(readers=readers)
    parser.epilog = EXAMPLES
    parser.add_argument("model_dir", metavar="DIR", type=Path, help="a model directory from any 'train'")
    parser.add_argument("text", metavar="TEXT", help="what the model reads (see above)")
    parser.add_argument(
        "--out",
        metavar="FILE",
        type=Path,
        action="append",
        default=[],
        help="write FILE.png, FILE.html or FILE.json (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print every value as JSON on stdout")
    parser.add_argument(
        "--units",
        metavar="LIST",
        type=unit_list,
        help=f"units to show, e.g. 3,17 (default: the {DEFAULT_UNITS} whose gates vary most, per layer)",
    )
    parser.add_argument(
        "--layer",
        metavar="N",
        type=POSITIVE_INT.parse,
        help="PNG: only layer N, from 1 (both directions of a bidirectional layer); default: every layer",
    )
    parser.add_argument(
        "--row",
        metavar="N",
        type=POSITIVE_INT.parse,
        help="classify: which series of a TEXT file to read, from 1 (default: 1)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    for path in args.out:
        if path.suffix.lower() not in FORMATS:
            raise InputError(f"--out {path}: unknown format; end the name with {', '.join(FORMATS)}")
        if not path.parent.is_dir():
            raise InputError(f"--out {path}: no directory {path.parent}; create it first")
    if not args.out and not args.json:
        raise InputError("nothing to write: give --out FILE.png, --out FILE.html, --out FILE.json or --json")
    record = inspect_model(args.model_dir, args.text, args.row)
    layers = len({name.split(",")[0] for name in record.rows})
    if args.layer and args.layer > layers:
        raise InputError(f"--layer {args.layer}: the model has {layers} layer(s)")
    if args.units and max(args.units) >= record.hidden_size:
        raise InputError(
            f"--units {max(args.units)}: the model has units 0 to {record.hidden_size - 1} per layer"
        )
    report = sys.stderr if args.json else sys.stdout  # with --json, stdout holds only the JSON
    for path in args.out:
        for written in write_record(record, path, args.units, args.layer):
            print(f"wrote {written}", file=report)
    if args.json:
        print(json.dumps(record.to_json()))


def write_record(
    record: GateRecord, path: Path, units: list[int] | None = None, layer: int | None = None
) -> list[Path]:
    """Write RECORD as PATH's suffix says (.png, .html, .json); return the files written. UNITS: the
    units to show (PNG) or open on (HTML); LAYER: the only layer the PNG shows, from 1."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        write_atomic(path, json.dumps(record.to_json()) + "\n")
        return [path]
    if suffix == ".html":
        from lstmkit.plots.html import write_html

        write_html(record, path, unit=units[0] if units else None)
        return [path]
    from lstmkit.plots.gates import plot_gate_heatmaps, plot_gate_summary

    summary = path.with_name(f"{path.stem}-summary{path.suffix}")
    rows = (
        None
        if layer is None
        else [r for r, name in enumerate(record.rows) if name.split(",")[0] == f"layer {layer}"]
    )
    plot_gate_heatmaps(record, path, units=units, count=DEFAULT_UNITS, rows=rows)
    plot_gate_summary(record, summary)
    return [path, summary]


def inspect_model(model_dir: str | Path, text, row: int | None = None) -> GateRecord:
    """Run the model in MODEL_DIR (any task's, found through the registry) on TEXT and record its gates;
    ROW: which series of a file a series classifier reads (from 1)."""
    estimator = load_estimator(model_dir)
    if isinstance(text, str) and not text.strip():
        raise InputError("TEXT is empty; give the text or series the model should read")
    takes_row = "row" in inspect.signature(estimator.gates).parameters
    if row is not None and not takes_row:
        raise InputError(f"--row: a {estimator.task} model reads TEXT whole; --row picks a series of a file")
    with torch.no_grad():
        record = estimator.gates(text, **({"row": row} if row is not None else {}))
    record.title = f"{record.title} ({model_dir})"
    return record


register(
    Task(
        "inspect",
        "show a trained model's gates while it reads a text or series (PNG, HTML, JSON)",
        add_commands,
    )
)
