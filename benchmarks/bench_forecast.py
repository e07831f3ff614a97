"""The forecaster's default against the statistical methods a forecaster would use instead, on the single
series of ../shared/data at the documented horizons: lstmkit's forecast (chosen on the validation part),
the LSTM alone, AutoETS / AutoTheta / AutoARIMA (statsforecast, fitted before the test part, rolling
origins without refit), seasonal naive; MASE (RMSE for airline), interval coverage and MSIS.

    python benchmarks/bench_forecast.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import machine
import numpy as np
import torch

from lstmkit import Forecaster

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETS = {  # name: (file, target, horizon, test size, the score the README quotes)
    "airline": ("airline-passengers/airline-passengers.csv", "Passengers", 1, 48, "rmse"),
    "sunspots": ("sunspots/monthly-sunspots.csv", "Sunspots", 12, 0.2, "mase"),
    "temperatures": ("daily-min-temperatures/daily-min-temperatures.csv", "Temp", 7, 0.2, "mase"),
}
STATS = ("AutoETS", "AutoTheta", "AutoARIMA")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--sets", default=",".join(SETS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine.describe())
    seeds = [int(s) for s in args.seeds.split(",")]
    for name in args.sets.split(","):
        path, target, horizon, test_size, key = SETS[name]
        runs = []
        for seed in seeds:
            start = time.perf_counter()
            fc = Forecaster(horizon=horizon, seed=seed)
            fc.fit(DATA / path, target=target, test_size=test_size, verbose=False)
            metrics = fc.evaluate()
            runs.append((metrics, time.perf_counter() - start))
        first = runs[0][0]
        mine = [m[key] for m, _ in runs]
        lstm = [m["LSTM"][key] for m, _ in runs]
        stats = {s: first["baselines"][s][key] for s in STATS if s in first["baselines"]}
        best = min(stats, key=stats.get) if stats else None
        print(
            f"\n{name}, h={horizon}, {key.upper()} ({len(seeds)} seeds, "
            f"{np.mean([t for _, t in runs]):.0f} s a run)"
        )
        print(
            f"  lstmkit   {np.mean(mine):.4g} ± {np.std(mine):.2g}  ({', '.join(f'{v:.4g}' for v in mine)})"
        )
        print(f"  forecast  {', '.join(m['forecast'] for m, _ in runs)}")
        print(f"  LSTM      {np.mean(lstm):.4g} ± {np.std(lstm):.2g}")
        for s, v in stats.items():
            print(f"  {s:9} {v:.4g}")
        print(f"  seasonal naive {first['baselines']['seasonal_naive'][key]:.4g}")
        for note in first["baseline_notes"]:
            print(f"  ({note})")
        if best:
            won = sum(v <= stats[best] for v in mine)
            print(
                f"  lstmkit at or below the best statistical method ({best} {stats[best]:.4g}) in {won} of "
                f"{len(mine)} seeds"
            )
        for who in ["lstmkit", *stats]:
            cells = [
                f"{level}%: cover {np.mean([m['intervals'][who][level]['coverage'] for m, _ in runs]):.1%}"
                f" MSIS {np.mean([m['intervals'][who][level]['msis'] for m, _ in runs]):.2f}"
                for level in ("80", "95")
                if who in runs[0][0]["intervals"]
            ]
            print(f"  intervals {who:9} " + "; ".join(cells))


if __name__ == "__main__":
    main()
