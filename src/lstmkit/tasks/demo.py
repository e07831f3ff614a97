"""`lstmkit demo`: train a small character model for about a minute, then show its gates on a sentence."""

from __future__ import annotations

import argparse
import json
import math
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmkit.config import POSITIVE, SEED
from lstmkit.data.text import load_bundled_text
from lstmkit.files import write_atomic
from lstmkit.plots.record import GateRecord
from lstmkit.tasks import registry
from lstmkit.tasks.estimator import prepare_out_dir
from lstmkit.tasks.registry import Task
from lstmkit.train.metrics import format_loss

SENTENCE = "Bob is a nice person. Dan, on the other hand, is evil."
SHOWN_UNITS = 8  # units in gates.png

DEMO_DESCRIPTION = """\
Train a small character-level LSTM on the bundled tinyshakespeare text for about a minute, then
show what it learned:

  - the validation loss (nats and bits per character) and a text sample, before and after training;
  - a table of the last layer's forget and input gates at each character of the sentence
    "Bob is a nice person. Dan, on the other hand, is evil.", with the full stop marked;
  - the gates on that sentence in pictures: DIR/gates.png (heatmaps of the last layer's gates for
    the units whose forget gate drops most at the full stops), DIR/gates-summary.png (how often each
    unit's gates are shut or open) and DIR/gates.html (open it in a browser: hover a character to see
    every gate, pick any unit);
  - DIR/samples.txt (both samples), DIR/trace.json (every gate and state value per character, as
    'lstmkit inspect --json' writes it) and the trained model (model.safetensors, config.json,
    metrics.json, loss_curve.png), ready for 'lstmkit inspect DIR TEXT' and 'lstmkit charlm sample DIR'.

Training stops when the time budget is spent, so a faster machine trains more steps.

From Python: lstmkit.CharLM(...).initialize(text), .fit(), .gates(sentence); lstmkit.tasks.demo.run_demo."""

DEMO_EXAMPLES = """\
examples:
  lstmkit demo                          about a minute, results in ./lstmkit-demo
  lstmkit demo --seconds 600 --out run  ten minutes: lower loss, better samples"""


def add_commands(parser: argparse.ArgumentParser) -> None:
    """`lstmkit demo`."""
    parser.epilog = DEMO_EXAMPLES
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=Path("lstmkit-demo"),
        help="directory for the model, samples, pictures and trace, created if missing; earlier files there "
        "are replaced (default: ./lstmkit-demo)",
    )
    parser.add_argument(
        "--seconds",
        metavar="S",
        type=POSITIVE.parse,
        default=60.0,
        help="training time budget in seconds (default: 60)",
    )
    parser.add_argument(
        "--seed",
        metavar="N",
        type=SEED.parse,
        default=0,
        help="seed for the initial weights and the samples (default: 0)",
    )
    parser.set_defaults(run=lambda args: run_demo(args.out, args.seconds, args.seed))


# Sizes chosen so that a minute on two CPU cores visibly teaches the model something: the 66 ids need
# few dimensions; 2 layers of 128 train fast and learn words in a minute; 64 streams of 64 characters
# per batch cost little more per step than fewer; a high learning rate for a short run; the budget alone
# ends training, with one validation at the end.
DEMO_MODEL = {
    "embed_size": 64,
    "hidden_size": 128,
    "num_layers": 2,
    "dropout": 0.0,
    "batch_size": 64,
    "seq_len": 64,
    "lr": 3e-3,
    "grad_clip": 1.0,
    "epochs": 1000,
    "patience": 0,
    "schedule": "constant",
    "eval_every": 10**9,
    "checkpoint_every": 10**9,
}
PROMPT, SAMPLE_LENGTH, TEMPERATURE = "ROMEO:\n", 300, 0.8  # both samples; a little below 1: fewer typos


def run_demo(out_dir: str | Path = "lstmkit-demo", seconds: float = 60.0, seed: int = 0) -> None:
    """Train a character model on the bundled tinyshakespeare for SECONDS; print what changed; write
    OUT_DIR."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be a positive number, got {seconds}")
    started = time.monotonic()
    out_dir = prepare_out_dir(Path(out_dir))
    lm = registry.get("charlm").estimator(**DEMO_MODEL, minutes=seconds / 60, seed=seed)
    lm.initialize(load_bundled_text())
    cfg, vocab = lm.config, lm.vocab
    print(f"lstmkit demo: a character-level LSTM learns to write like Shakespeare (seed {seed}).")
    print(
        f"Model: embedding {cfg.embed_size} -> LSTM {cfg.num_layers} layers x {cfg.hidden_size} "
        f"units -> linear {len(vocab)} characters; {lm.parameter_count():,} parameters."
    )
    print(
        f"Data: tinyshakespeare (bundled), {len(lm.train_ids):,} characters to learn from, "
        f"the last {len(lm.val_ids):,} (10%) held out for validation.\n"
        f"Validation loss: lower is better; guessing uniformly among the {len(vocab)} characters "
        f"scores {format_loss(math.log(len(vocab)))}.\n"
    )

    before = Snapshot.take(lm, seed)
    before.show("Before training")
    print(
        f"\nTraining for {seconds:g} s: batches of {cfg.batch_size} x {cfg.seq_len} characters, "
        f"Adam (lr {cfg.lr:g}), gradient norm clipped at {cfg.grad_clip:g}, "
        "state carried from batch to batch."
    )
    lm.fit(checkpoint_dir=out_dir)
    steps = lm.training_state.step
    after = Snapshot.take(lm, seed)
    lm.save(out_dir)
    after.show(f"\nAfter training ({steps:,} steps, {steps * cfg.batch_size * cfg.seq_len:,} characters)")

    record = lm.gates(SENTENCE, f"the demo's character model after {seconds:g} s of training")
    last, stops = cfg.num_layers - 1, [i for i, char in enumerate(SENTENCE) if char == "."]
    units = reset_units(record.values["forget_gate"][last], stops, SHOWN_UNITS)
    print("\n" + gate_table(SENTENCE, record, units[0], last))

    from lstmkit.plots.gates import plot_gate_heatmaps, plot_gate_summary
    from lstmkit.plots.html import write_html

    why = f"the {SHOWN_UNITS} whose forget gate drops most at the full stops (outlined in red)"
    plot_gate_heatmaps(record, out_dir / "gates.png", units=units, rows=[last], why=why, marks=stops)
    plot_gate_summary(record, out_dir / "gates-summary.png")
    write_html(record, out_dir / "gates.html", unit=units[0], step=stops[0], row=last)
    write_atomic(out_dir / "trace.json", json.dumps(record.to_json()) + "\n")
    write_atomic(
        out_dir / "samples.txt",
        f"Prompt: {PROMPT!r}, temperature {TEMPERATURE:g}, seed {seed}\n\n"
        f"--- before training (validation loss {format_loss(before.loss)}) ---\n{before.sample}\n\n"
        f"--- after {seconds:g} s of training, {steps:,} steps "
        f"(validation loss {format_loss(after.loss)}) ---\n{after.sample}\n",
    )
    print(f"\nEverything is in {out_dir}/ (took {time.monotonic() - started:.0f} s):")
    for name, what in (
        ("gates.html", "open it in a browser: hover a character to see every gate; pick any unit"),
        (
            "gates.png",
            "heatmaps of the last layer's gates on the sentence, for the units whose forget gate drops "
            "most at the full stops",
        ),
        ("gates-summary.png", "per gate and unit, how often it is shut (< 0.1) or open (> 0.9)"),
        ("trace.json", "every gate and state value, per layer, character and unit, for notebooks"),
        ("samples.txt", "the samples before and after training"),
        ("model.safetensors", "the trained model, with config.json, metrics.json and loss_curve.png"),
    ):
        print(f"  {out_dir / name}: {what}")
    print(f"Next: lstmkit inspect {out_dir} 'Any text you like.' --out mine.html")
    print(f"      lstmkit charlm sample {out_dir} --prompt 'ROMEO:'")


@dataclass(frozen=True)
class Snapshot:
    """What the model can do at one moment: its validation loss (nats/char) and a text sample."""

    loss: float
    sample: str

    @classmethod
    def take(cls, lm, seed: int) -> Snapshot:
        sample = PROMPT + lm.sample(PROMPT, SAMPLE_LENGTH, TEMPERATURE, seed)
        return cls(lm.evaluate()["val_loss"], sample)

    def show(self, title: str) -> None:
        print(title)
        print(f"  validation loss: {format_loss(self.loss)}")
        print(f"  sample (temperature {TEMPERATURE:g}):")
        print(textwrap.indent(self.sample, "    | ", predicate=lambda line: True))


def reset_units(forget_gate: np.ndarray, steps: list[int], count: int) -> list[int]:
    """The COUNT units whose forget gate (T, H) is lowest at STEPS relative to its mean at the other
    steps, the largest drop first: the units that erase their memory there."""
    others = [t for t in range(len(forget_gate)) if t not in steps]
    drop = forget_gate[others].mean(axis=0) - forget_gate[steps].mean(axis=0)  # (H,)
    return np.argsort(-drop, kind="stable")[:count].tolist()


def gate_table(sentence: str, record: GateRecord, unit: int, row: int) -> str:
    """A text table: per character, the forget gate (mean over units, and UNIT's) and UNIT's input gate."""
    forget, input_gate = record.values["forget_gate"][row], record.values["input_gate"][row]  # (T, H) each
    stops = [i for i, char in enumerate(sentence) if char == "."]

    def bar(value: float) -> str:
        return "#" * round(10 * value) + "." * (10 - round(10 * value))

    lines = [
        f"Gates of LSTM layer {row + 1} (the last) while it reads: {sentence!r}",
        "forget gate: near 1 keeps a unit's cell memory, near 0 wipes it. "
        "input gate: how much new information is written.",
        f"Unit {unit} is the unit whose forget gate drops most at the full stops.",
        "",
        f"pos char  forget(mean)      forget(unit {unit:<3})   input(unit {unit:<3})",
    ]
    for position, char in enumerate(sentence):
        f_mean, f_unit, i_unit = forget[position].mean(), forget[position, unit], input_gate[position, unit]
        note = "  <- full stop" if char == "." else ""
        lines.append(
            f"{position:>3} {char!r:<5} {f_mean:.2f} {bar(f_mean)}   {f_unit:.2f} {bar(f_unit)}   "
            f"{i_unit:.2f} {bar(i_unit)}{note}"
        )
    elsewhere = np.delete(forget[:, unit], stops).mean()
    at_stops = ", ".join(f"{forget[t, unit]:.2f}" for t in stops)
    verdict = (
        "it erases its memory where a sentence ends."
        if forget[stops, unit].mean() < 0.5 * elsewhere
        else "not a clear reset yet; train longer (--seconds 300) and look again."
    )
    lines.append(
        f"\nUnit {unit}'s forget gate is {at_stops} at the full stops and {elsewhere:.2f} on average "
        f"elsewhere: {verdict}"
    )
    return "\n".join(lines)


registry.register(
    Task(
        "demo",
        "train a small character model for a minute and show its gates at work",
        add_commands,
        description=DEMO_DESCRIPTION,
    )
)
