"""M4 Hourly (414 series, horizon 48, the competition's own test file): one global LSTM over all series
against the statistical methods and the competition's Naive2, in sMAPE, MASE (season 24) and OWA, with the
80% / 95% interval coverage and MSIS.

The model: lstmkit.tasks.forecast_many.fit_global, one LSTM over every window of every series, each
series encoded on its own; the last VALIDATION steps of each series for early stopping and for the
split-conformal intervals.

    python benchmarks/bench_m4.py --minutes 12
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import machine
import numpy as np

from lstmkit.stat_baselines import naive2_forecast, statistical_forecasts
from lstmkit.tasks.forecast_blend import LEVELS
from lstmkit.tasks.forecast_many import fit_global
from lstmkit.train.loop import TrainConfig
from lstmkit.train.metrics import coverage, msis, owa, seasonal_scale, smape

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "m4-hourly"
HORIZON, SEASON = 48, 24
PUBLISHED_NAIVE2 = (18.383, 2.395)  # sMAPE, MASE


def read_wide(path: Path) -> tuple[list[str], list[np.ndarray]]:
    """The M4 wide CSV: a row per series, its id first, then its values and empty fields after them."""
    with path.open(newline="") as file:
        rows = list(csv.reader(file))[1:]
    return [row[0] for row in rows], [np.array([float(v) for v in row[1:] if v]) for row in rows]


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
    parser.add_argument("--validation", type=int, default=96, help="last steps of each series held out")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stats", default="AutoETS,AutoTheta", help="statsforecast methods to run beside")
    args = parser.parse_args()
    print(machine.describe())
    ids, train = read_wide(DATA / "Hourly-train.csv")
    test_ids, test = read_wide(DATA / "Hourly-test.csv")
    assert ids == test_ids and all(len(t) == HORIZON for t in test)
    print(f"M4 Hourly: {len(train)} series of {min(map(len, train))}-{max(map(len, train))} steps")

    forecasts = {"naive2": [naive2_forecast(y, HORIZON, SEASON) for y in train]}
    forecasts["seasonal naive"] = [y[len(y) - SEASON + np.arange(HORIZON) % SEASON] for y in train]
    stat_bands = {}
    for method in filter(None, args.stats.split(",")):
        started, points, lows, highs = (
            time.perf_counter(),
            [],
            {k: [] for k in LEVELS},
            {k: [] for k in LEVELS},
        )
        for y in train:
            found, notes = statistical_forecasts(
                y, len(y), np.array([len(y) - 1]), HORIZON, SEASON, (method,)
            )
            points.append(found[method].point[0])
            for level in LEVELS:
                lows[level].append(found[method].intervals[level][0][0])
                highs[level].append(found[method].intervals[level][1][0])
        forecasts[method] = points
        stat_bands[method] = {k: (np.array(lows[k]), np.array(highs[k])) for k in LEVELS}
        print(f"{method}: {time.perf_counter() - started:.0f} s for {len(train)} series")
    config = TrainConfig(
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
    model = fit_global(
        train,
        HORIZON,
        SEASON,
        config,
        window=args.window,
        hidden_size=args.hidden,
        num_layers=args.layers,
        batch_size=args.batch,
        validation=args.validation,
    )
    state = model.state
    print(
        f"trained {time.perf_counter() - started:.0f} s: {state.step} steps; best validation "
        f"{state.best:.4f} at step {state.best_step}"
    )
    lstm, bands = model.future(train)
    forecasts["lstmkit LSTM"] = list(lstm)
    stat_bands["lstmkit LSTM"] = bands

    def averages(name: str) -> tuple[float, float]:
        pairs = [
            (smape(f, a), np.mean(np.abs(f - a)) / seasonal_scale(y, SEASON))
            for f, a, y in zip(forecasts[name], test, train)
        ]
        return tuple(np.mean(pairs, axis=0))

    base = averages("naive2")
    published = f"published {PUBLISHED_NAIVE2[0]} / {PUBLISHED_NAIVE2[1]}"
    print(f"\nNaive2 sMAPE {base[0]:.3f} MASE {base[1]:.3f} ({published})")
    print(f"{'':16}{'sMAPE':>8}{'MASE':>8}{'OWA':>8}{'cover 80%':>11}{'cover 95%':>11}{'MSIS':>8}")
    results = {}
    for name in forecasts:
        s, m = averages(name)
        results[name] = owa(s, m, *base)
        row = f"{name:16}{s:8.3f}{m:8.3f}{results[name]:8.3f}"
        if name in stat_bands:
            b = stat_bands[name]
            actual = np.stack(test)
            cover = [coverage(*b[level], actual) for level in LEVELS]
            score = np.mean([msis(lo, hi, a, y, SEASON) for lo, hi, a, y in zip(*b[95], test, train)])
            row += f"{cover[0]:11.1%}{cover[1]:11.1%}{score:8.2f}"
        print(row)
    best = min(results, key=results.get)
    print(f"best OWA: {best} ({results[best]:.3f}); the M4 winner (ES-RNN) 0.440")


if __name__ == "__main__":
    main()
