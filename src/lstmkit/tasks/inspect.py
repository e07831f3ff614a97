"""`lstmkit inspect DIR TEXT`: the gates of a trained model while it reads TEXT, as pictures, HTML or JSON.

``inspect_model(DIR, TEXT)`` returns the same record for notebooks.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lstmkit.data.sequences import read_series, sliding_windows
from lstmkit.data.text import CharVocab
from lstmkit.data.timeseries import STEPLESS, Series, load_series
from lstmkit.data.vocab import WordVocab, tokenize
from lstmkit.errors import InputError
from lstmkit.files import write_atomic
from lstmkit.inspect.record import GateRecord, shown
from lstmkit.models.charlm import CharLM
from lstmkit.models.classifier import SequenceClassifier
from lstmkit.models.forecaster import Encoding, Forecaster
from lstmkit.tasks import charlm
from lstmkit.tasks.classify import load_classifier, series_inputs
from lstmkit.tasks.common import positive_int
from lstmkit.train.checkpoint import CONFIG_FILE, load_model, read_json

FORMATS = (".png", ".html", ".json")
DEFAULT_UNITS = 8

DESCRIPTION = """\
Run the model in DIR (the --out directory of any 'lstmkit ... train', or of 'lstmkit demo') on TEXT
and show what its LSTM's gates did at each step: the input gate i, forget gate f, candidate g,
output gate o, cell state c and hidden state h of every layer (and direction), for every unit.

What TEXT is depends on the model's task:
  charlm     the text itself; one step per character (characters the model never saw are shown
             greyed; the model reads them as its unknown character)
  sentiment  the text itself; one step per word or punctuation mark, lower-cased as the model
             reads it (words not in its vocabulary are shown greyed; the model reads them as <unk>)
  classify   a CSV/TSV or UCR file in the training layout (its --row-th series, label column
             optional), or numbers separated by commas, e.g. "0.1,0.5,2.3"; each step reads a
             window of the series as in training
  forecast   a CSV file with the training columns, or numbers separated by commas (the target's
             values, oldest first; only for a model without --features or a time-of-season input);
             the steps are the last window the model reads to forecast what follows

Outputs, by the suffix of each --out FILE (repeat --out for several):
  FILE.png   heatmaps of i, f, g, o and c per layer for the units whose gates vary most (or
             --units), the TEXT along the axis; and FILE-summary.png: per gate, the distribution
             of its values and each unit's fraction of saturated steps (below 0.1 or above 0.9),
             which tells integrator units (forget gate always open) from reset units
  FILE.html  one self-contained page: hover or click a step to see every gate's value there, pick
             a unit to colour the text by its activation, and see where that unit is most active
  FILE.json  every value, as --json prints it
--json prints the record (tokens, rows, values[quantity][row][step][unit]) on stdout."""

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


def add_commands(commands) -> None:
    """Register `lstmkit inspect`."""
    inspect = commands.add_parser(
        "inspect",
        help="show a trained model's gates while it reads a text or series (PNG, HTML, JSON)",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("model_dir", metavar="DIR", type=Path, help="a model directory from any 'train'")
    inspect.add_argument("text", metavar="TEXT", help="what the model reads (see above)")
    inspect.add_argument(
        "--out",
        metavar="FILE",
        type=Path,
        action="append",
        default=[],
        help="write FILE.png, FILE.html or FILE.json (repeatable)",
    )
    inspect.add_argument("--json", action="store_true", help="print every value as JSON on stdout")
    inspect.add_argument(
        "--units",
        metavar="LIST",
        type=unit_list,
        help=f"units to show, e.g. 3,17 (default: the {DEFAULT_UNITS} whose gates vary most, per layer)",
    )
    inspect.add_argument(
        "--layer",
        metavar="N",
        type=positive_int,
        help="PNG: only layer N, from 1 (both directions of a bidirectional layer); default: every layer",
    )
    inspect.add_argument(
        "--row",
        metavar="N",
        type=positive_int,
        default=1,
        help="classify: which series of a TEXT file to read, from 1 (default: 1)",
    )
    inspect.set_defaults(run=run)


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
        from lstmkit.inspect.html import write_html

        write_html(record, path, unit=units[0] if units else None)
        return [path]
    from lstmkit.inspect.gates import plot_gate_heatmaps, plot_gate_summary

    summary = path.with_name(f"{path.stem}-summary{path.suffix}")
    rows = (
        None
        if layer is None
        else [r for r, name in enumerate(record.rows) if name.split(",")[0] == f"layer {layer}"]
    )
    plot_gate_heatmaps(record, path, units=units, count=DEFAULT_UNITS, rows=rows)
    plot_gate_summary(record, summary)
    return [path, summary]


def inspect_model(model_dir: str | Path, text: str, row: int = 1) -> GateRecord:
    """Run the model in MODEL_DIR on TEXT (see DESCRIPTION) and record its gates."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: no such directory; give the --out directory of a 'train' command")
    task = read_json(model_dir / CONFIG_FILE).get("task")
    readers = {"charlm": charlm_record, "sentiment": sentiment_record, "classify": classify_record}
    readers["forecast"] = forecast_record
    if task not in readers:
        raise InputError(
            f"{model_dir / CONFIG_FILE}: task {task!r} is not one inspect knows ({', '.join(readers)})"
        )
    if not text.strip():
        raise InputError("TEXT is empty; give the text or series the model should read")
    with torch.no_grad():
        return readers[task](model_dir, text, row)


def charlm_record(model_dir: Path, text: str, _row: int) -> GateRecord:
    model, vocab, _config = charlm.load(model_dir)
    return charlm_gates(model, vocab, text, f"character model {model_dir}")


@torch.no_grad()
def charlm_gates(model: CharLM, vocab: CharVocab, text: str, title: str) -> GateRecord:
    """The gates of a character model (in eval mode) reading TEXT, with its next-character guesses."""
    ids = vocab.encode(text)  # (T,)
    logits, _state, trace = model(ids.view(1, -1), return_trace=True)  # (1, T, V); fields (L, 1, T, H)
    probs = torch.softmax(logits[0], dim=-1)  # (T, V)
    top = probs.topk(min(3, probs.shape[1]), dim=-1)
    notes = [
        "next: " + ", ".join(f"{shown(vocab.chars[i])} {p:.0%}" for p, i in zip(ps.tolist(), ix.tolist()))
        for ps, ix in zip(top.values, top.indices)
    ]
    summary = f"{len(text)} characters"
    if len(ids) > 1:
        loss = F.cross_entropy(logits[0, :-1], ids[1:]).item()
        summary += f"; predicting each next one costs {loss:.3f} nats ({loss / math.log(2):.3f} bits)"
    return GateRecord.from_trace(
        trace.map(lambda t: t[:, 0]),
        False,
        task="charlm",
        title=title,
        tokens=list(text),
        token_kind="character",
        summary=summary,
        notes=notes,
        unknown=(ids == 0).nonzero().view(-1).tolist(),
    )


def class_summary(model: SequenceClassifier, inputs: torch.Tensor, names: list[str]) -> str:
    """'predicted: class pos, probability 0.93 (neg 0.07)' for one sequence, (T,) ids or (T, F) values."""
    logits = model(inputs[None], torch.tensor([len(inputs)]))  # (1, 1) or (1, C)
    probs = SequenceClassifier.probabilities(logits)[0].tolist()
    best = max(range(len(names)), key=probs.__getitem__)
    others = ", ".join(f"{name} {p:.2f}" for name, p in zip(names, probs) if name != names[best])
    return f"predicted: class {names[best]}, probability {probs[best]:.2f} (other classes: {others})"


def sentiment_record(model_dir: Path, text: str, _row: int) -> GateRecord:
    model, config = load_classifier(model_dir, "sentiment")
    words = tokenize(text)
    if not words:
        raise InputError(f"TEXT {text!r} has no words; give a sentence")
    ids = torch.tensor(WordVocab(config["vocab"]).encode(text))  # (T,)
    return GateRecord.from_trace(
        model.gate_trace(ids),
        model.config["bidirectional"],
        task="sentiment",
        title=f"text classifier {model_dir}",
        tokens=words,
        token_kind="word",
        summary=class_summary(model, ids, config["class_names"]),
        unknown=(ids == 1).nonzero().view(-1).tolist(),
    )


def parse_number_list(text: str) -> np.ndarray:
    """'1.5, 2, 3e2' -> (N,) float64; InputError if TEXT is neither a file nor such a list."""
    try:
        values = np.array([float(part) for part in text.split(",")])
    except ValueError:
        raise InputError(
            f"TEXT {text[:40]!r} is neither a file nor numbers separated by commas; give a CSV file "
            "or e.g. 1.5,2,3"
        ) from None
    if not np.isfinite(values).all():
        raise InputError(f"TEXT {text[:40]!r}: every number must be finite (no nan or inf)")
    return values


def classify_record(model_dir: Path, text: str, row: int) -> GateRecord:
    model, saved = load_classifier(model_dir, "classify")
    length = saved["length"]
    if Path(text).is_file():
        label_column = None if saved["label_column"] is None else str(saved["label_column"] + 1)
        data = read_series(Path(text), label_column, None, length)
        if row > len(data.lines):
            raise InputError(f"--row {row}: {text} holds {len(data.lines)} series")
        values, source = data.values[row - 1], f"{text}, series {row} (line {data.lines[row - 1]})"
    else:
        values, source = torch.from_numpy(parse_number_list(text)).float(), f"{len(text.split(','))} values"
    inputs = series_inputs(values[None], saved)[0]  # (S, window), scaled as in training
    raw = sliding_windows(values[None], saved["window"], saved["stride"])[0]  # (S, window)
    window, stride = saved["window"], saved["stride"]
    summary = class_summary(model, inputs, saved["class_names"])
    if len(values) != length:
        summary += f"; note: the model was trained on series of {length} values, this one has {len(values)}"
    return GateRecord.from_trace(
        model.gate_trace(inputs),
        model.config["bidirectional"],
        task="classify",
        title=f"series classifier {model_dir}: {source}",
        tokens=[f"{v:.4g}" for v in raw[:, -1].tolist()],
        token_kind="value",
        summary=summary,
        notes=[
            f"reads values {s * stride + 1} to {min(s * stride + window, len(values))} of the series"
            for s in range(len(raw))
        ],
        series=raw[:, -1].tolist(),
        series_name=f"the last of the {window} values each step reads",
    )


def forecast_series(config: dict, text: str) -> Series:
    """TEXT's series: a CSV file with the training columns, or the target's values separated by commas."""
    if Path(text).is_file():
        return load_series(
            text, config["target"], config["time"] or [], config["features"], config["categories"]
        )
    if config["features"]:
        raise InputError(
            f"the model also reads {', '.join(config['features'])}; give TEXT as a CSV file with them"
        )
    if config["encoding"]["season_inputs"] and config["time"]:
        raise InputError(
            f"the model reads the position in the season from {'+'.join(config['time'])}; "
            "give TEXT as a CSV file with that column"
        )
    values = parse_number_list(text)
    return Series(config["target"], values, np.zeros((len(values), 0)), [], 0, {}, None, STEPLESS, "step")


def forecast_record(model_dir: Path, text: str, _row: int) -> GateRecord:
    config, tensors = load_model(model_dir, "forecast")
    series = forecast_series(config, text)
    encoding, window = Encoding.from_dict(config["encoding"]), config["window"]
    steps = len(series.values)
    if encoding.log and (series.values <= 0).any():
        raise InputError(f"TEXT: {series.target} has values <= 0, but the model reads its logarithm")
    if steps < encoding.offset + window:
        raise InputError(
            f"TEXT gives {steps} steps; the model reads the last {window}"
            f"{f' + {encoding.offset} (one season)' if encoding.offset else ''}: give a longer series"
        )
    model = Forecaster(config["input_size"], config["horizon"], config["hidden_size"], config["num_layers"])
    model.load_state_dict(tensors)
    model.eval()
    inputs = encoding.inputs(series)  # (N, C)
    origin = np.array([steps - 1])
    forecast = encoding.decode(
        series.values, origin, model.predict(inputs, torch.from_numpy(origin), window)
    )[0]
    shown_steps = np.arange(steps - window, steps)
    if series.times is not None:
        when = series.clock.format(series.times[shown_steps])
        ahead = series.clock.format(series.clock.later(series.times[-1], len(forecast)))
    else:
        when = [f"step {s + 1}" for s in shown_steps]
        ahead = [f"step {steps + k}" for k in range(1, len(forecast) + 1)]
    values = series.values[shown_steps]
    return GateRecord.from_trace(
        model.gate_trace(inputs[steps - window :]),
        False,
        task="forecast",
        title=f"forecaster {model_dir}: the last {window} steps of {series.target}",
        tokens=[f"{v:.4g}" for v in values],
        token_kind="value",
        summary="forecast of what follows: " + ", ".join(f"{t}: {v:.4g}" for t, v in zip(ahead, forecast)),
        notes=[f"{t}: {series.target} {v:.6g}" for t, v in zip(when, values)],
        series=values.tolist(),
        series_name=series.target,
    )
