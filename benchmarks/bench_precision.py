"""bf16 against float32 training on the tasks: does --precision bf16 train as well, and how much faster?

    python benchmarks/bench_precision.py                          # charlm and sentiment
    python benchmarks/bench_precision.py --tasks charlm --epochs 2

Each task's estimator trains twice from the same seed, on the same data and steps, once with
precision="fp32" and once with "bf16" (torch.autocast around each training step; float32 master weights,
validation in float32), in turn, so that the machine's drift hits both. Printed per task: the validation
loss at every validation of both runs and their largest gap (charlm's target: within 0.02 nats/char at
the same step), and the training throughput (items per second over the training steps alone, the
Trainer's clock) with its ratio. The data: tinyshakespeare and rt-polarity from ../shared/data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import machine

import lstmkit
from lstmkit.backend import cpu

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def charlm(precision: str, epochs: int):
    lm = lstmkit.CharLM(precision=precision, epochs=epochs, eval_every=100, minutes=600, seed=0)
    lm.fit(DATA / "tinyshakespeare" / "input.txt", verbose=False)
    items = lm.config.batch_size * lm.config.seq_len  # characters per step
    return lm.training_state, items


def sentiment(precision: str, epochs: int):
    texts = {name: DATA / "rt-polarity" / f"rt-polarity.{name}" for name in ("pos", "neg")}
    classifier = lstmkit.TextClassifier(precision=precision, epochs=epochs, members=1, patience=0, seed=0)
    classifier.fit(texts, encoding="cp1252", verbose=False)
    return classifier.training_state, classifier.config.batch_size


TASKS = {"charlm": (charlm, "nats/char", "characters"), "sentiment": (sentiment, "loss", "texts")}


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--tasks", default="charlm,sentiment", help="comma-separated: charlm, sentiment")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs of each run (default: 1)")
    args = parser.parse_args()
    print(f"machine: {machine.describe()}")
    path = "bf16 loops" if cpu.bf16_loops() else "float32 loops on float32 copies (no bf16 products here)"
    print(f"lstmkit's bf16 runs the {path}")
    for name in args.tasks.split(","):
        run, unit, items_name = TASKS[name]
        states = {}
        for precision in ("fp32", "bf16"):
            state, items = run(precision, args.epochs)
            assert state.precision == precision
            states[precision] = (state, items * state.step / state.elapsed)
        (fp32, fp32_rate), (bf16, bf16_rate) = states["fp32"], states["bf16"]
        print(f"\n## {name}: validation {unit} at each validation, fp32 and bf16 (same seed, same steps)")
        print(f"{'step':>6} {'fp32':>8} {'bf16':>8} {'bf16-fp32':>9}")
        gaps = []
        for step, a, b in zip(fp32.history["val_step"], fp32.history["val_loss"], bf16.history["val_loss"]):
            gaps.append(b - a)
            print(f"{step:>6} {a:>8.4f} {b:>8.4f} {b - a:>+9.4f}")
        largest = max(map(abs, gaps))
        print(f"largest |bf16 - fp32| {largest:.4f} {unit}; best: fp32 {fp32.best:.4f}, bf16 {bf16.best:.4f}")
        print(
            f"training throughput: fp32 {fp32_rate:,.0f} {items_name}/s, bf16 {bf16_rate:,.0f} "
            f"{items_name}/s, bf16/fp32 {bf16_rate / fp32_rate:.2f}"
        )


if __name__ == "__main__":
    main()
