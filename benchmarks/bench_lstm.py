"""Time lstmkit's backends against torch.nn.LSTM: correctness first, then interleaved timings.

    python benchmarks/bench_lstm.py            # the whole grid
    python benchmarks/bench_lstm.py --quick    # the first two shapes, fewer repeats

For each shape every contender runs in turn inside each repeat (interleaved, so drift in the machine's
speed hits all alike); the table shows the median over repeats, the ratio peer time / our time
(above 1: lstmkit is faster) and reference time / each faster backend's time. Before any timing,
each backend's outputs and gradients are checked against torch.nn.LSTM on the same weights.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import lstmkit

# (T, B, input, hidden, layers, bidirectional)
GRID = [
    (100, 32, 128, 128, 1, False),
    (200, 8, 32, 64, 1, False),
    (100, 64, 256, 256, 1, False),
    (50, 16, 512, 512, 1, False),
    (100, 64, 64, 512, 1, False),
    (100, 32, 128, 128, 2, False),
    (100, 32, 128, 128, 1, True),
]


def check_against_torch(lstm: lstmkit.LSTM, x: torch.Tensor) -> float:
    """Largest relative difference to torch.nn.LSTM over output and all gradients."""
    twin = torch.nn.LSTM(lstm.input_size, lstm.hidden_size, lstm.num_layers, bidirectional=lstm.bidirectional)
    twin.load_state_dict(lstm.state_dict())
    results = []
    for module in (lstm, twin):
        module.zero_grad()
        xi = x.clone().requires_grad_()
        out, _ = module(xi)
        out.square().sum().backward()
        results.append([out, xi.grad, *[p.grad for p in module.parameters()]])
    return max(((a - e).abs().max() / e.abs().max()).item() for a, e in zip(*results))


def training_step(module, x):
    out, _ = module(x)
    out.sum().backward()


def inference(module, x):
    with torch.no_grad():
        module(x)


def time_interleaved(contenders: dict, x: torch.Tensor, step, repeats: int) -> dict[str, float]:
    """Median seconds per call of ``step(module, x)`` for each contender, interleaved per repeat."""
    for module in contenders.values():
        step(module, x)  # warm-up
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, module in contenders.items():
            start = time.perf_counter()
            step(module, x)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="two shapes, three repeats")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per shape (median reported)")
    args = parser.parse_args()
    grid, repeats = (GRID[:2], 3) if args.quick else (GRID, args.repeats)
    backends = lstmkit.backends()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; backends: {', '.join(backends)}")
    header = f"{'T':>4} {'B':>3} {'in':>4} {'hid':>4} {'L':>2} {'bi':>2} {'mode':>9}  {'torch ms':>9}"
    faster = [b for b in backends if b != "reference"]
    header += "".join(f"  {b + ' ms':>13} {'torch/' + b:>16}" for b in backends)
    print(header + "".join(f"  {'reference/' + b:>15}" for b in faster))
    for steps, batch, inp, hidden, layers, bidir in grid:
        torch.manual_seed(0)
        x = torch.randn(steps, batch, inp)
        ours = {}
        for name in backends:
            torch.manual_seed(0)
            ours[name] = lstmkit.LSTM(inp, hidden, layers, bidirectional=bidir, backend=name)
            error = check_against_torch(ours[name], x[:10])
            if error > 1e-4:
                raise SystemExit(
                    f"{name} disagrees with torch.nn.LSTM (relative error {error:.2e}): not timing it"
                )
        contenders = {"torch": torch.nn.LSTM(inp, hidden, layers, bidirectional=bidir), **ours}
        for mode, step in (("train", training_step), ("inference", inference)):
            med = time_interleaved(contenders, x, step, repeats)
            row = (
                f"{steps:>4} {batch:>3} {inp:>4} {hidden:>4} {layers:>2} {'y' if bidir else 'n':>2} {mode:>9}"
            )
            row += f"  {med['torch'] * 1e3:>9.2f}"
            row += "".join(f"  {med[b] * 1e3:>13.2f} {med['torch'] / med[b]:>16.2f}" for b in backends)
            row += "".join(f"  {med['reference'] / med[b]:>15.2f}" for b in faster)
            print(row, flush=True)


if __name__ == "__main__":
    main()
