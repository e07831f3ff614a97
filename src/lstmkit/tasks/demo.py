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
import torch

from lstmkit.data.text import CharVocab, load_bundled_text, split_train_val
from lstmkit.files import write_atomic
from lstmkit.inspect.record import GateRecord
from lstmkit.models.charlm import CharLM
from lstmkit.tasks.charlm import LOSS_NAME, TASK, CharLMJob, build_model, format_loss, mean_loss, model_config
from lstmkit.tasks.common import number, prepare_out_dir, seed_number, write_report
from lstmkit.tasks.inspect import charlm_gates
from lstmkit.train.loop import TrainConfig, Trainer

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

Training stops when the time budget is spent, so a faster machine trains more steps."""

DEMO_EXAMPLES = """\
examples:
  lstmkit demo                          about a minute, results in ./lstmkit-demo
  lstmkit demo --seconds 600 --out run  ten minutes: lower loss, better samples"""


def positive_seconds(text: str) -> float:
    """argparse type for --seconds: a finite number greater than 0."""
    seconds = number(text)
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return seconds


def add_commands(commands) -> None:
    """Register `lstmkit demo`."""
    demo = commands.add_parser(
        "demo",
        help="train a small character model for a minute and show its gates at work",
        description=DEMO_DESCRIPTION,
        epilog=DEMO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=Path("lstmkit-demo"),
        help="directory for the model, samples, pictures and trace, created if missing; earlier files there "
        "are replaced (default: ./lstmkit-demo)",
    )
    demo.add_argument(
        "--seconds",
        metavar="S",
        type=positive_seconds,
        default=60.0,
        help="training time budget in seconds (default: 60)",
    )
    demo.add_argument(
        "--seed",
        metavar="N",
        type=seed_number,
        default=0,
        help="seed for the initial weights and the samples (default: 0)",
    )
    demo.set_defaults(run=lambda args: run_demo(args.out, args.seconds, args.seed))


@dataclass(frozen=True)
class DemoConfig:
    """Sizes chosen so that a minute on two CPU cores visibly teaches the model something."""

    embed_size: int = 64  # the 66 ids need few dimensions
    hidden_size: int = 128  # small enough to train fast, big enough to learn words in a minute
    num_layers: int = 2  # a stacked LSTM, as in the tutorials; the trace shows the top layer
    batch_size: int = 64  # streams trained side by side; more cost little extra time per step
    seq_len: int = 64  # BPTT window; the state still flows on across windows
    learning_rate: float = 3e-3  # AdamW; high enough for a short run
    grad_clip: float = 1.0  # max gradient norm, against exploding gradients
    prompt: str = "ROMEO:\n"  # where both samples start
    sample_length: int = 300  # characters per sample
    temperature: float = 0.8  # a little below 1: fewer typos, still varied


def run_demo(out_dir: str | Path = "lstmkit-demo", seconds: float = 60.0, seed: int = 0) -> None:
    """Train a CharLM on the bundled tinyshakespeare for SECONDS, print what changed, write OUT_DIR."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be a positive number, got {seconds}")
    started = time.monotonic()
    out_dir = prepare_out_dir(Path(out_dir))
    config = DemoConfig()
    torch.manual_seed(seed)
    text = load_bundled_text()
    vocab = CharVocab.from_text(text)
    train_ids, val_ids = split_train_val(vocab.encode(text))
    described = model_config(
        vocab, config.embed_size, config.hidden_size, config.num_layers, 0.0, config.seq_len
    )
    model = build_model(described)
    print(f"lstmkit demo: a character-level LSTM learns to write like Shakespeare (seed {seed}).")
    print(
        f"Model: embedding {config.embed_size} -> LSTM {config.num_layers} layers x {config.hidden_size} "
        f"units -> linear {len(vocab)} characters; {sum(p.numel() for p in model.parameters()):,} parameters."
    )
    print(
        f"Data: tinyshakespeare (bundled), {len(train_ids):,} characters to learn from, "
        f"the last {len(val_ids):,} (10%) held out for validation.\n"
        f"Validation loss: lower is better; guessing uniformly among the {len(vocab)} characters "
        f"scores {format_loss(math.log(len(vocab)))}.\n"
    )

    before = Snapshot.take(model, vocab, val_ids, config, seed)
    before.show("Before training", config)
    print(
        f"\nTraining for {seconds:g} s: batches of {config.batch_size} x {config.seq_len} characters, "
        f"Adam (lr {config.learning_rate:g}), gradient norm clipped at {config.grad_clip:g}, "
        "state carried from batch to batch."
    )
    job = CharLMJob(model, train_ids, val_ids, config.batch_size, config.seq_len)
    train = TrainConfig(
        epochs=1000,  # the time budget ends training
        minutes=seconds / 60,
        lr=config.learning_rate,
        grad_clip=config.grad_clip,
        patience=0,
        schedule="constant",
        eval_every=10**9,  # validate once, at the end
        checkpoint_every=10**9,
        seed=seed,
    )
    state = Trainer(job, train, out_dir, unit="chars").fit()
    steps = state.step
    after = Snapshot.take(model, vocab, val_ids, config, seed)
    metrics = {"val_loss": after.loss, "val_bpc": after.loss / math.log(2)}
    write_report(out_dir, TASK, model, described, metrics, state, train, started, LOSS_NAME)
    after.show(
        f"\nAfter training ({steps:,} steps, {steps * config.batch_size * config.seq_len:,} characters)",
        config,
    )

    model.eval()
    record = charlm_gates(
        model, vocab, SENTENCE, f"the demo's character model after {seconds:g} s of training"
    )
    last, stops = config.num_layers - 1, [i for i, char in enumerate(SENTENCE) if char == "."]
    units = reset_units(record.values["forget_gate"][last], stops, SHOWN_UNITS)
    print("\n" + gate_table(SENTENCE, record, units[0], last))

    from lstmkit.inspect.gates import plot_gate_heatmaps, plot_gate_summary
    from lstmkit.inspect.html import write_html

    why = f"the {SHOWN_UNITS} whose forget gate drops most at the full stops (outlined in red)"
    plot_gate_heatmaps(record, out_dir / "gates.png", units=units, rows=[last], why=why, marks=stops)
    plot_gate_summary(record, out_dir / "gates-summary.png")
    write_html(record, out_dir / "gates.html", unit=units[0], step=stops[0], row=last)
    write_atomic(out_dir / "trace.json", json.dumps(record.to_json()) + "\n")
    write_atomic(
        out_dir / "samples.txt",
        f"Prompt: {config.prompt!r}, temperature {config.temperature:g}, seed {seed}\n\n"
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
    def take(cls, model: CharLM, vocab: CharVocab, val_ids: torch.Tensor, config: DemoConfig, seed: int):
        generator = torch.Generator().manual_seed(seed)
        ids = model.sample(vocab.encode(config.prompt), config.sample_length, config.temperature, generator)
        loss = mean_loss(model, val_ids, 2 * config.batch_size, config.seq_len)
        return cls(loss, config.prompt + vocab.decode(ids))

    def show(self, title: str, config: DemoConfig) -> None:
        print(title)
        print(f"  validation loss: {format_loss(self.loss)}")
        print(f"  sample (temperature {config.temperature:g}):")
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
