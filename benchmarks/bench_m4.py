"""M4 Hourly (414 series, horizon 48, the competition's own test file): one global LSTM over all series
(lstmkit.GlobalForecaster, as `lstmkit forecast train Hourly-train.csv --test-file Hourly-test.csv` runs
it) against the statistical methods and the competition's Naive2 in the same run, in sMAPE, MASE (season
24) and OWA, with the 80% / 95% interval coverage and MSIS.

    python benchmarks/bench_m4.py --minutes 12
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import machine

from lstmkit import GlobalForecaster

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "m4-hourly"
HORIZON, SEASON = 48, 24
PUBLISHED_NAIVE2 = (18.383, 2.395)  # sMAPE, MASE


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=12.0, help="training budget")
    parser.add_argument("--window", type=int, default=168, help="steps read: a week")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stats", default="AutoETS,AutoTheta", help="statsforecast methods to run beside")
    parser.add_argument("--out", type=Path, help="also save the model directory here")
    args = parser.parse_args()
    print(machine.describe())
    gf = GlobalForecaster(
        horizon=HORIZON,
        season=SEASON,
        window=args.window,
        hidden_size=args.hidden,
        num_layers=args.layers,
        batch_size=args.batch,
        epochs=100_000,
        minutes=args.minutes,
        lr=args.lr,
        patience=0,
        schedule="cosine",
        eval_every=args.eval_every,
        seed=args.seed,
        precision="fp32",
    )
    started = time.perf_counter()
    gf.fit(
        DATA / "Hourly-train.csv",
        test_data=DATA / "Hourly-test.csv",
        statistical=tuple(args.stats.split(",")),
    )
    state = gf.training_state
    print(
        f"trained {time.perf_counter() - started:.0f} s: {state.step} steps; best validation "
        f"{state.best:.4f} at step {state.best_step}"
    )
    started = time.perf_counter()
    metrics = gf.evaluate()
    print(f"evaluated (the statistical methods fitted) in {time.perf_counter() - started:.0f} s")
    naive2 = metrics["baselines"]["naive2"]
    print(
        f"Naive2 sMAPE {naive2['smape']:.3f} MASE {naive2['mase']:.3f} (published "
        f"{PUBLISHED_NAIVE2[0]} / {PUBLISHED_NAIVE2[1]})"
    )
    print(gf.score_table())
    print("the M4 winner (ES-RNN): OWA 0.440")
    if args.out:
        gf.save(args.out)


if __name__ == "__main__":
    main()
