"""Word-level language modelling on the Penn Treebank: Zaremba et al.'s table, and the training speed
against the same model in plain PyTorch.

    python benchmarks/bench_wordlm.py table small            # Zaremba small: test perplexity, wall time
    python benchmarks/bench_wordlm.py table medium --precision bf16
    python benchmarks/bench_wordlm.py speed                  # words/s against plain PyTorch, fp32 and bf16

``table PRESET`` trains ``lstmkit.WordLM`` with the preset's settings (the same as the
``lstmkit wordlm train`` options it prints) on ../shared/data/ptb and prints the validation and test
perplexity, the training wall time and the published figure beside it.

``speed`` times training steps of two networks of the same size, head, loss, optimizer and batch (SGD,
gradient clipping, batch 20 x 35 steps, a 10,000-word full softmax): lstmkit's (lstmkit.LSTM layers,
the WordLM network) and plain PyTorch's (torch.nn.LSTM), in turns, in one process; medians of the
rounds and their ratio, and the share of a step that the LSTM and the softmax take.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import machine
import torch
import torch.nn.functional as F
from torch import nn

import lstmkit
from lstmkit.backend import cpu
from lstmkit.cli import keep_freed_memory
from lstmkit.models.wordlm import WordNetwork

PTB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ptb"

# Zaremba et al. (2014), Table 1; the learning rate and clipping are theirs scaled to the mean loss per
# word (their loss is summed over the --bptt steps): lr 1 -> lr bptt, clip 5 -> 5 / bptt
PRESETS = {
    "small": ({}, 114.5),
    "medium": (
        dict(
            hidden_size=650,
            embed_size=650,
            dropout=0.5,
            seq_len=35,
            epochs=39,
            lr=35.0,
            grad_clip=5 / 35,
            decay_after=6,
            lr_decay=0.8,
        ),
        82.7,
    ),
    "large": (
        dict(
            hidden_size=1500,
            embed_size=1500,
            dropout=0.65,
            seq_len=35,
            epochs=55,
            lr=35.0,
            grad_clip=10 / 35,
            decay_after=14,
            lr_decay=1 / 1.15,
        ),
        78.4,
    ),
}


def flags(settings: dict) -> str:
    names = {"num_layers": "layers", "seq_len": "bptt", "grad_clip": "clip"}
    return " ".join(
        f"--{names.get(k, k).replace('_', '-')} {v:g}"
        if isinstance(v, float)
        else f"--{names.get(k, k).replace('_', '-')} {v}"
        for k, v in settings.items()
    )


def table(preset: str, precision: str, minutes: float | None) -> None:
    settings, published = PRESETS[preset]
    settings = {**settings, "precision": precision, "minutes": minutes}
    settings = {k: v for k, v in settings.items() if v is not None}
    print(
        f"preset {preset}: lstmkit wordlm train ptb.train.txt --valid ptb.valid.txt --test ptb.test.txt "
        f"{flags(settings)}"
    )
    started = time.monotonic()
    lm = lstmkit.WordLM(**settings).fit(
        PTB / "ptb.train.txt", valid=PTB / "ptb.valid.txt", test=PTB / "ptb.test.txt"
    )
    metrics = lm.evaluate()
    wall = time.monotonic() - started
    state = lm.training_state
    print(
        f"\n{preset}: validation perplexity {metrics['val_perplexity']:.1f}, test perplexity "
        f"{metrics['test_perplexity']:.1f} (Zaremba et al.: {published}); {state.stopped}; best epoch by "
        f"validation at step {state.best_step}; training {state.elapsed / 60:.1f} min "
        f"({metrics['words_per_second']:,} words/s, precision {state.precision}), {wall / 60:.1f} min in all"
    )


class PlainLM(nn.Module):
    """The same model in plain PyTorch: nn.Embedding -> nn.LSTM -> nn.Linear."""

    def __init__(self, vocab: int, size: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, size)
        self.lstm = nn.LSTM(size, size, layers, batch_first=True)
        self.head = nn.Linear(size, vocab)

    def forward(self, tokens, state=None):
        hidden, state = self.lstm(self.embed(tokens), state)
        return hidden, state

    def nll(self, hidden, targets):
        return F.cross_entropy(self.head(hidden).flatten(0, 1), targets.flatten())


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def train_step(model, optimizer, inputs, targets, precision: str) -> None:
    with autocast(precision):
        hidden, _ = model(inputs)
        loss = model.nll(hidden, targets)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 0.25, foreach=True)
    optimizer.step()


def part_step(model, what: str, inputs, targets, precision: str) -> None:
    """Forward and backward of the LSTM alone (embedding included), or of the softmax and loss alone."""
    with autocast(precision):
        if what == "lstm":
            hidden, _ = model(inputs)
            loss = hidden.float().square().mean()
        else:
            hidden = torch.randn(*inputs.shape, model.head.in_features, requires_grad=True)
            loss = model.nll(hidden, targets)
    loss.backward()


def speed(rounds: int, steps: int, size: int, precisions: list[str]) -> None:
    vocab, batch, bptt = 10_000, 20, 35
    torch.manual_seed(0)
    tokens = torch.randint(0, vocab, (batch, bptt + 1))
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    print(f"model: 2 x {size}, batch {batch} x {bptt} steps, {vocab:,}-word full softmax, SGD, clip 0.25")
    for precision in precisions:
        models = {"lstmkit": WordNetwork(vocab, size, size, 2), "torch.nn.LSTM": PlainLM(vocab, size, 2)}
        optimizers = {k: torch.optim.SGD(m.parameters(), lr=1.0, fused=True) for k, m in models.items()}
        data = (inputs, targets, precision)
        times = {name: [] for name in models}
        parts = {(name, what): [] for name in models for what in ("lstm", "softmax")}
        for name, model in models.items():  # warm-up
            for _ in range(3):
                train_step(model, optimizers[name], *data)
        for _ in range(rounds):
            for name, model in models.items():
                started = time.perf_counter()
                for _ in range(steps):
                    train_step(model, optimizers[name], *data)
                times[name].append((time.perf_counter() - started) / steps)
                for what in ("lstm", "softmax"):
                    started = time.perf_counter()
                    for _ in range(steps):
                        part_step(model, what, *data)
                    parts[name, what].append((time.perf_counter() - started) / steps)
        medians = {name: statistics.median(t) for name, t in times.items()}
        print(f"\n## {precision}" + ("" if precision == "fp32" else f" (lstmkit's LSTM: {bf16_path()})"))
        print(f"{'network':<15} {'ms/step':>8} {'words/s':>9} {'LSTM ms':>8} {'softmax ms':>10}")
        for name, median in medians.items():
            lstm, head = (statistics.median(parts[name, what]) for what in ("lstm", "softmax"))
            print(
                f"{name:<15} {median * 1e3:>8.2f} {batch * bptt / median:>9,.0f} {lstm * 1e3:>8.2f} "
                f"{head * 1e3:>10.2f}"
            )
        ratio = medians["torch.nn.LSTM"] / medians["lstmkit"]
        print(f"lstmkit / plain PyTorch throughput: {ratio:.2f}x")


def bf16_path() -> str:
    return "bf16 loops" if cpu.bf16_loops() else "float32 loops on float32 copies (no bf16 products here)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("table", help="train a preset on PTB and report its perplexity")
    p.add_argument("preset", choices=PRESETS)
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--minutes", type=float, help="training budget (default: the preset's epochs)")
    p = commands.add_parser("speed", help="training words/s against plain PyTorch")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=10, help="steps per round and network")
    p.add_argument("--size", type=int, default=200, help="embedding and LSTM units (default: 200)")
    p.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32, bf16")
    args = parser.parse_args()
    keep_freed_memory()  # as the lstmkit command does
    print(f"machine: {machine.describe()}")
    if args.command == "table":
        table(args.preset, args.precision, args.minutes)
    else:
        speed(args.rounds, args.steps, args.size, args.precision.split(","))


if __name__ == "__main__":
    main()
