"""The adding-problem targets of `lstmkit memory`, run for real (about 40 to 70 minutes on one CPU thread):

  1. T = 100, 10 minutes per model: lstmkit.LSTM solves it (test MSE < 0.01 on fresh sequences),
     torch.nn.RNN (tanh) does not; torch.nn.GRU for comparison; the state gradients before and after.
  2. T = 500, 30 minutes: lstmkit.LSTM solves it.

Each is one `lstmkit memory` command (printed first); the tables are printed and left in OUT/*/table.md,
the plots next to them. Exit status 1 if a target is missed. Usage:

    python benchmarks/bench_memory.py [--out runs/bench-memory] [--only 100|500]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import machine

from lstmkit.cli import main as lstmkit_main

SETTINGS = ["--hidden-size", "64", "--batch-size", "64", "--lr", "3e-3", "--clip", "1"]
# T = 500 with forget bias 3: at initialisation sigma(1 + ...) ~ 0.73 per step leaves 1e-16 of dL/dc_T at
# c_250, so nothing reaches the first marker; sigma(3) ~ 0.95 keeps it near 0.1 over all 500 steps.
RUNS = {
    "100": ["--task", "adding", "--lengths", "100", "--minutes", "10", "--forget-bias", "1", "--gradients"],
    "500": [
        "--task",
        "adding",
        "--lengths",
        "500",
        "--minutes",
        "30",
        "--forget-bias",
        "3",
        "--models",
        "lstm",
    ],
}


def run(name: str, out: Path) -> dict:
    argv = ["memory", *RUNS[name], *SETTINGS, "--out", str(out / f"adding-{name}")]
    print("$ lstmkit " + shlex.join(argv), flush=True)
    if lstmkit_main(argv) != 0:
        raise SystemExit(f"bench_memory: the T={name} run failed")
    record = json.loads((out / f"adding-{name}" / "metrics.json").read_text())
    return {r["model"]: r for r in record["results"]}


def check(results: dict, model: str, minutes: float, should_solve: bool) -> bool:
    r = results[model]
    solved = r["solved"] and r["seconds_to_solve"] <= minutes * 60
    how = f"after {r['seconds_to_solve'] / 60:.1f} min" if r["solved"] else f"MSE {r['test_error']:.4f}"
    verdict = "met" if solved == should_solve else "MISSED"
    print(f"target {verdict}: {model} T={r['length']} {'solved' if solved else 'not solved'} ({how})")
    return solved == should_solve


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-memory"))
    parser.add_argument("--only", choices=list(RUNS), help="run one of the two")
    args = parser.parse_args()
    print(f"machine: {machine.describe()}")
    met = True
    for name in [args.only] if args.only else list(RUNS):
        results = run(name, args.out)
        met &= check(results, "lstm", float(RUNS[name][RUNS[name].index("--minutes") + 1]), True)
        if "rnn" in results:
            met &= check(results, "rnn", 10, False)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
