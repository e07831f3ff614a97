"""Time lstmkit against torch.nn.LSTM and plain PyTorch loops: correctness first, then interleaved timings.

    python benchmarks/bench_lstm.py                 # every table
    python benchmarks/bench_lstm.py --quick         # two shapes, fewer repeats
    python benchmarks/bench_lstm.py --only grid     # one table: grid, bf16, variants, ragged, streaming,
                                                    # per-call

Every contender runs in turn inside each repeat (interleaved, so drift in the machine's speed hits all
alike); tables show the median over repeats and the ratio peer time / lstmkit time (above 1: lstmkit is
faster). Before any timing, each contender's outputs and gradients are checked against a reference.
GFLOP/s counts the matrix products (a training step as 3x the forward's), next to the machine's large
sgemm measured in the same run: torch.mm (the BLAS) and lstmkit's tiled GEMM (oneDNN's micro-kernel); the
bf16 table's TFLOP/s next to a large bf16 torch.mm's.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import statistics
import time
import warnings
from collections.abc import Callable

import machine
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit.backend import cpu

# (T, B, input, hidden); each with 1 and 2 layers, and the first also bidirectional
SHAPES = [(100, 32, 128, 128), (100, 64, 256, 256), (50, 16, 512, 512), (100, 64, 64, 512), (200, 8, 32, 64)]
BACKEND = "cpu"


def median_times(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each contender, interleaved per repeat, after one warm-up call each."""
    for run in contenders.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def sgemm_gflops(repeats: int) -> tuple[float, float]:
    """Large square sgemm GFLOP/s: torch.mm (the BLAS) and lstmkit's tiled GEMM."""
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    med = median_times({"torch": lambda: a @ b, "lstmkit": lambda: cpu.kernel_matmul(a, b)}, repeats)
    return 2 * n**3 / med["torch"] / 1e9, 2 * n**3 / med["lstmkit"] / 1e9


def bf16_gemm_tflops(repeats: int) -> float:
    """Large square bf16 torch.mm TFLOP/s (oneDNN: AMX or AVX512-BF16 where the CPU has them)."""
    n = 2048
    a, b = torch.randn(n, n).bfloat16(), torch.randn(n, n).bfloat16()
    return 2 * n**3 / median_times({"torch": lambda: a @ b}, repeats)["torch"] / 1e12


def lstm_flops(steps: int, batch: int, inp: int, hidden: int, layers: int, directions: int) -> float:
    """Multiply-adds x 2 of one forward: the input and recurrent products of every layer and direction."""
    total = 0
    for layer in range(layers):
        layer_in = inp if layer == 0 else directions * hidden
        total += directions * 2 * steps * batch * (layer_in + hidden) * 4 * hidden
    return float(total)


def max_relative_error(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> float:
    pairs = zip(actual, expected)
    return max(((a - e).abs().max() / e.abs().max().clamp_min(1e-30)).item() for a, e in pairs)


def outputs_and_grads(module, x, **call) -> list[torch.Tensor]:
    module.zero_grad()
    xi = x.clone().requires_grad_()
    out = module(xi, **call)[0]
    out = out.data if hasattr(out, "batch_sizes") else out
    out.square().sum().backward()
    return [out, xi.grad, *[p.grad for p in module.parameters()]]


def require(error: float, what: str, limit: float = 1e-4) -> None:
    if not error <= limit:
        raise SystemExit(f"{what}: relative error {error:.2e} exceeds {limit:.0e}; not timing it")


def train_step(module, x, **call):
    def run():
        out = module(x, **call)[0]
        (out.data if hasattr(out, "batch_sizes") else out).sum().backward()

    return run


def infer(module, x, **call):
    def run():
        with torch.no_grad():
            module(x, **call)

    return run


# ---- the grid against torch.nn.LSTM ----------------------------------------------------------------------


def grid(repeats: int, quick: bool, peak: float) -> None:
    print("\n## lstmkit (cpu backend) against torch.nn.LSTM, float32")
    print(
        f"{'T':>4} {'B':>3} {'in':>4} {'hid':>4} {'L':>2} {'bi':>2} {'mode':>9}  {'torch ms':>9} "
        f"{'lstmkit ms':>10} {'torch/lstmkit':>13}  {'GFLOP/s':>8} {'% sgemm':>7}"
    )
    configs = [(s, layers, False) for s in SHAPES[: 2 if quick else None] for layers in (1, 2)]
    configs.insert(2, (SHAPES[0], 1, True))
    ratios = {"train": [], "inference": []}
    for (steps, batch, inp, hidden), layers, bidirectional in configs:
        torch.manual_seed(0)
        ours = lstmkit.LSTM(inp, hidden, layers, bidirectional=bidirectional, backend=BACKEND)
        theirs = torch.nn.LSTM(inp, hidden, layers, bidirectional=bidirectional)
        theirs.load_state_dict(ours.state_dict())
        x = torch.randn(steps, batch, inp)
        short = x[:10]
        require(max_relative_error(outputs_and_grads(ours, short), outputs_and_grads(theirs, short)), "grid")
        flops = lstm_flops(steps, batch, inp, hidden, layers, 2 if bidirectional else 1)
        for mode, make, factor in (("train", train_step, 3), ("inference", infer, 1)):
            med = median_times({"torch": make(theirs, x), "lstmkit": make(ours, x)}, repeats)
            ratio = med["torch"] / med["lstmkit"]
            ratios[mode].append(ratio)
            gflops = factor * flops / med["lstmkit"] / 1e9
            print(
                f"{steps:>4} {batch:>3} {inp:>4} {hidden:>4} {layers:>2} {'y' if bidirectional else 'n':>2} "
                f"{mode:>9}  {med['torch'] * 1e3:>9.2f} {med['lstmkit'] * 1e3:>10.2f} {ratio:>13.2f}  "
                f"{gflops:>8.1f} {100 * gflops / peak:>6.0f}%",
                flush=True,
            )
    print_means(ratios)


def print_means(ratios: dict[str, list[float]], prefix: str = "") -> None:
    """Each mode's geometric mean of torch/lstmkit over the rows, and its lowest."""
    for mode, values in ratios.items():
        mean = statistics.geometric_mean(values)
        print(f"{prefix}{mode}: geometric mean torch/lstmkit {mean:.2f}, lowest {min(values):.2f}")


# ---- the grid in bf16 -------------------------------------------------------------------------------------


def autocast_step(module, x):
    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = module(x)[0]
        out.float().sum().backward()

    return run


def bf16_grid(repeats: int, quick: bool) -> None:
    """The grid's shapes in bf16: a bf16 module (inference, training) and float32 master weights under
    torch.autocast (training), each against torch.nn.LSTM the same way."""
    path = "bf16 loops" if cpu.bf16_loops() else "float32 loops on float32 copies (no bf16 products here)"
    peak = bf16_gemm_tflops(repeats)
    print(f"\n## lstmkit against torch.nn.LSTM in bf16 (lstmkit runs the {path})")
    print(f"large bf16 GEMM (2048^3, torch.mm): {peak:.2f} TFLOP/s")
    print(
        f"{'T':>4} {'B':>3} {'in':>4} {'hid':>4} {'L':>2} {'mode':>9}  {'torch ms':>9} "
        f"{'lstmkit ms':>10} {'torch/lstmkit':>13}  {'TFLOP/s':>7} {'% GEMM':>6}"
    )
    ratios = {"train": [], "inference": [], "autocast": []}
    for steps, batch, inp, hidden in SHAPES[: 2 if quick else None]:
        torch.manual_seed(0)
        ours = lstmkit.LSTM(inp, hidden, backend=BACKEND)
        theirs = torch.nn.LSTM(inp, hidden)
        theirs.load_state_dict(ours.state_dict())
        x = torch.randn(steps, batch, inp)
        flops = lstm_flops(steps, batch, inp, hidden, 1, 1)
        ours_bf16, theirs_bf16 = (copy.deepcopy(m).to(torch.bfloat16) for m in (ours, theirs))
        runs = {  # mode: torch's run, ours, the FLOPs' factor (training: 3x the forward's)
            "inference": (infer(theirs_bf16, x.bfloat16()), infer(ours_bf16, x.bfloat16()), 1),
            "train": (train_step(theirs_bf16, x.bfloat16()), train_step(ours_bf16, x.bfloat16()), 3),
            "autocast": (autocast_step(theirs, x), autocast_step(ours, x), 3),  # float32 master weights
        }
        for mode, (torch_run, ours_run, factor) in runs.items():
            med = median_times({"torch": torch_run, "lstmkit": ours_run}, repeats)
            ratio = med["torch"] / med["lstmkit"]
            ratios[mode].append(ratio)
            tflops = factor * flops / med["lstmkit"] / 1e12
            print(
                f"{steps:>4} {batch:>3} {inp:>4} {hidden:>4} {1:>2} {mode:>9}  {med['torch'] * 1e3:>9.2f} "
                f"{med['lstmkit'] * 1e3:>10.2f} {ratio:>13.2f}  {tflops:>7.2f} {100 * tflops / peak:>5.0f}%",
                flush=True,
            )
    print_means(ratios, "bf16 ")
    bf16_accuracy()
    bf16_variants(repeats)


def bf16_accuracy() -> None:
    """Each contender's bf16 error against float64 on the same bf16 weights and input: the largest
    relative error (to each tensor's largest magnitude) over the output, and over every gradient. Beside
    lstmkit's bf16 loops: its float32 loops on float32 copies of the same bf16 module (bf16 only where the
    module's input and output are), which shows how much the network itself amplifies bf16's rounding."""
    steps, batch, inp, hidden = SHAPES[0]
    print(
        f"\n## bf16 accuracy against float64, T={steps} B={batch} input={inp} hidden={hidden}, training mode"
    )
    print(
        f"{'variant':>11}  {'lstmkit out':>11} {'grads':>8}  {'float32 loops out':>17} {'grads':>8}  "
        f"{'torch out':>9} {'grads':>8}"
    )
    x = torch.randn(steps, batch, inp).bfloat16()
    for name, options in (
        ("vanilla", {}),
        ("projection", {"proj_size": hidden // 2}),
        ("peephole", {"peephole": True}),
        ("layer_norm", {"layer_norm": True}),
    ):
        torch.manual_seed(0)
        ours = lstmkit.LSTM(inp, hidden, backend=BACKEND, **options).to(torch.bfloat16)
        reference = lstmkit.LSTM(inp, hidden, backend="reference", dtype=torch.float64, **options)
        reference.load_state_dict({k: v.double() for k, v in ours.state_dict().items()})
        expected = outputs_and_grads(reference, x.double())
        errors = [relative_errors(outputs_and_grads(ours, x), expected)]
        with float32_loops():
            errors.append(relative_errors(outputs_and_grads(ours, x), expected))
        if "proj_size" in options or not options:  # the options torch.nn.LSTM has
            theirs = torch.nn.LSTM(inp, hidden, **options).to(torch.bfloat16)
            theirs.load_state_dict(ours.state_dict())
            errors.append(relative_errors(outputs_and_grads(theirs, x), expected))
        widths = [(11, 8), (17, 8), (9, 8)]
        cells = [f"{e[0]:>{a}.2e} {max(e[1:]):>{b}.2e}" for e, (a, b) in zip(errors, widths)]
        print(f"{name:>11}  {'  '.join(cells)}", flush=True)


@contextlib.contextmanager
def float32_loops():
    """bf16 modules on lstmkit's float32 loops (float32 copies), as on a CPU without bf16 products."""
    saved = list(cpu._BF16_PRODUCTS)
    cpu._BF16_PRODUCTS[:] = [False]
    try:
        yield
    finally:
        cpu._BF16_PRODUCTS[:] = saved


def relative_errors(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> list[float]:
    pairs = zip(actual, expected)
    return [((a.double() - e).abs().max() / e.abs().max().clamp_min(1e-30)).item() for a, e in pairs]


def bf16_variants(repeats: int) -> None:
    """Each variant's bf16 training step against vanilla bf16's (the same shape as the variants table)."""
    steps, batch, inp, hidden = SHAPES[0]
    print(f"\n## bf16 variants, training step, T={steps} B={batch} input={inp} hidden={hidden}, one layer")
    print(f"{'variant':>11}  {'vanilla ms':>10} {'lstmkit ms':>10} {'lstmkit/vanilla':>15}")
    x = torch.randn(steps, batch, inp).bfloat16()
    vanilla = lstmkit.LSTM(inp, hidden, backend=BACKEND).to(torch.bfloat16)
    for name, options in (
        ("layer_norm", {"layer_norm": True}),
        ("peephole", {"peephole": True}),
        ("projection", {"proj_size": hidden // 2}),
        ("trace", {}),
    ):
        ours = lstmkit.LSTM(inp, hidden, backend=BACKEND, **options).to(torch.bfloat16)
        call = {"return_trace": True} if name == "trace" else {}
        med = median_times(
            {"vanilla": train_step(vanilla, x), "lstmkit": train_step(ours, x, **call)}, repeats
        )
        print(
            f"{name:>11}  {med['vanilla'] * 1e3:>10.2f} {med['lstmkit'] * 1e3:>10.2f} "
            f"{med['lstmkit'] / med['vanilla']:>15.2f}",
            flush=True,
        )


# ---- variants against plain PyTorch loops ----------------------------------------------------------------


class PlainLoopLSTM(torch.nn.Module):
    """One layer of the variant written as the plain PyTorch loop one would write without lstmkit:
    autograd through every step. Loads lstmkit's parameters."""

    def __init__(self, ours: lstmkit.LSTM, peephole: bool, layer_norm: bool, trace: bool):
        super().__init__()
        self.params = {name: p.detach().clone().requires_grad_() for name, p in ours.named_parameters()}
        for name, p in self.params.items():
            self.register_parameter(name, torch.nn.Parameter(p))
        self.peephole, self.layer_norm, self.trace = peephole, layer_norm, trace
        self.hidden = ours.hidden_size

    def forward(self, x):
        p = dict(self.named_parameters())
        steps, batch, _ = x.shape
        hidden = self.hidden
        h = x.new_zeros(batch, hidden)
        c = x.new_zeros(batch, hidden)
        x_proj = x @ p["weight_ih_l0"].t()
        if self.layer_norm:
            x_proj = F.layer_norm(x_proj, x_proj.shape[-1:]) * p["ln_weight_ih_l0"]
        x_proj = x_proj + p["bias_ih_l0"] + p["bias_hh_l0"]
        outputs, gates = [], []
        for t in range(steps):
            hh = h @ p["weight_hh_l0"].t()
            if self.layer_norm:
                hh = F.layer_norm(hh, hh.shape[-1:]) * p["ln_weight_hh_l0"]
            a_i, a_f, a_g, a_o = (x_proj[t] + hh).chunk(4, dim=-1)
            if self.peephole:
                a_i, a_f = a_i + p["weight_ci_l0"] * c, a_f + p["weight_cf_l0"] * c
            i, f, g = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g)
            c = f * c + i * g
            o = torch.sigmoid(a_o + p["weight_co_l0"] * c) if self.peephole else torch.sigmoid(a_o)
            c_out = c
            if self.layer_norm:
                c_out = F.layer_norm(c, (hidden,), p["ln_weight_c_l0"], p["ln_bias_c_l0"])
            h = o * torch.tanh(c_out)
            outputs.append(h)
            if self.trace:
                gates.append(torch.stack([i, f, g, o, c, h]).detach())
        trace = torch.stack(gates) if self.trace else None
        return torch.stack(outputs), (h, c), trace


def variants(repeats: int) -> None:
    steps, batch, inp, hidden = SHAPES[0]
    print(f"\n## variants, training step, T={steps} B={batch} input={inp} hidden={hidden}, one layer")
    print(
        f"{'variant':>11}  {'plain loop ms':>13} {'lstmkit ms':>10} {'plain/lstmkit':>13}  "
        f"{'vanilla ms':>10} {'lstmkit/vanilla':>15}"
    )
    x = torch.randn(steps, batch, inp)
    torch.manual_seed(0)
    vanilla = lstmkit.LSTM(inp, hidden, backend=BACKEND)
    for name, options in (
        ("layer_norm", {"layer_norm": True}),
        ("peephole", {"peephole": True}),
        ("trace", {"trace": True}),
    ):
        torch.manual_seed(0)
        ours = lstmkit.LSTM(
            inp, hidden, backend=BACKEND, **{k: v for k, v in options.items() if k != "trace"}
        )
        flags = [options.get(flag, False) for flag in ("peephole", "layer_norm", "trace")]
        plain = PlainLoopLSTM(ours, *flags)
        call = {"return_trace": True} if options.get("trace") else {}
        short = x[:10]
        error = max_relative_error(outputs_and_grads(ours, short, **call), outputs_and_grads(plain, short))
        require(error, name)
        # two interleaved pairs: the plain loop's thousands of small tensors would otherwise leave the
        # caches and the allocator cold for whichever kernel runs after it
        med = median_times(
            {"lstmkit": train_step(ours, x, **call), "vanilla": train_step(vanilla, x)}, repeats
        )
        peer = median_times({"plain": train_step(plain, x), "lstmkit": train_step(ours, x, **call)}, repeats)
        print(
            f"{name:>11}  {peer['plain'] * 1e3:>13.2f} {med['lstmkit'] * 1e3:>10.2f} "
            f"{peer['plain'] / peer['lstmkit']:>13.2f}  {med['vanilla'] * 1e3:>10.2f} "
            f"{med['lstmkit'] / med['vanilla']:>15.2f}",
            flush=True,
        )


# ---- a ragged batch against a PackedSequence --------------------------------------------------------------


def ragged(repeats: int) -> None:
    steps, batch, hidden = 100, 32, 128
    print(f"\n## ragged batch, lengths uniform in [{steps // 4}, {steps}], T={steps} B={batch} H={hidden}")
    torch.manual_seed(0)
    lengths = torch.randint(steps // 4, steps + 1, (batch,))
    x = torch.randn(steps, batch, hidden)
    ours = lstmkit.LSTM(hidden, hidden, backend=BACKEND)
    theirs = torch.nn.LSTM(hidden, hidden)
    theirs.load_state_dict(ours.state_dict())

    def packed_run(module, grad: bool):
        def run():
            with torch.set_grad_enabled(grad):
                xi = x.clone().requires_grad_(grad)
                out = module(pack_padded_sequence(xi, lengths, enforce_sorted=False))[0]
                if grad:
                    out.data.square().sum().backward()
            return [out.data, xi.grad, *[p.grad for p in module.parameters()]] if grad else None

        return run

    def lengths_run(grad: bool):
        def run():
            with torch.set_grad_enabled(grad):
                xi = x.clone().requires_grad_(grad)
                out = ours(xi, lengths=lengths)[0]
                if grad:
                    out.square().sum().backward()
            if grad:
                packed = pack_padded_sequence(out, lengths, enforce_sorted=False).data
                return [packed, xi.grad, *[p.grad for p in ours.parameters()]]
            return None

        return run

    for module in (ours, theirs):
        module.zero_grad()
    require(max_relative_error(lengths_run(True)(), packed_run(theirs, True)()), "ragged")
    print(f"{'mode':>9}  {'torch packed ms':>15} {'lstmkit lengths ms':>18} {'torch/lstmkit':>13}")
    for mode, grad in (("train", True), ("inference", False)):
        med = median_times({"torch": packed_run(theirs, grad), "lstmkit": lengths_run(grad)}, repeats)
        print(
            f"{mode:>9}  {med['torch'] * 1e3:>15.2f} {med['lstmkit'] * 1e3:>18.2f} "
            f"{med['torch'] / med['lstmkit']:>13.2f}",
            flush=True,
        )


# ---- streaming, one step at a time ------------------------------------------------------------------------


def streaming(repeats: int) -> None:
    layers, hidden, steps = 2, 256, 200
    print(f"\n## streaming, B=1, {layers} layers of {hidden}, state carried; latency per step over {steps}")
    torch.manual_seed(0)
    ours = lstmkit.LSTM(hidden, hidden, layers, backend=BACKEND).eval()
    theirs = torch.nn.LSTM(hidden, hidden, layers).eval()
    theirs.load_state_dict(ours.state_dict())
    cells = [torch.nn.LSTMCell(hidden, hidden) for _ in range(layers)]  # what a torch user streams with
    for k, cell in enumerate(cells):
        cell.load_state_dict({name: getattr(theirs, f"{name}_l{k}") for name in cell.state_dict()})
    xs = torch.randn(steps, 1, hidden)
    ours_bf16 = lstmkit.LSTM(hidden, hidden, layers, backend=BACKEND).eval()
    ours_bf16.load_state_dict(ours.state_dict())
    ours_bf16.to(torch.bfloat16)
    cells_bf16 = [torch.nn.LSTMCell(hidden, hidden) for _ in range(layers)]
    for cell, twin in zip(cells_bf16, cells):
        cell.load_state_dict(twin.state_dict())
        cell.to(torch.bfloat16)

    def ours_run(training: bool, module=ours):
        def run():
            module.train(training)
            state = module.initial_state(1)
            with torch.no_grad():
                for x in xs.to(module.weight_ih_l0.dtype):
                    y, state = module.step(x, state)
            return y

        return run

    def lstm_run():
        state = None
        with torch.no_grad():
            for x in xs:
                y, state = theirs(x[None], state)
        return y[0]

    def cells_run(chain=cells):
        def run():
            states = [None] * layers
            with torch.no_grad():
                for x in xs.to(chain[0].weight_ih.dtype):
                    y = x
                    for k, cell in enumerate(chain):
                        states[k] = cell(y, states[k])
                        y = states[k][0]
            return y

        return run

    contenders = {
        "nn.LSTM per step": lstm_run,
        "nn.LSTMCell chain": cells_run(),
        "lstmkit step, eval": ours_run(False),
        "lstmkit step, train mode": ours_run(True),
        "nn.LSTMCell chain, bf16": cells_run(cells_bf16),
        "lstmkit step, bf16": ours_run(False, ours_bf16),
    }
    outputs = {name: run().float() for name, run in contenders.items()}
    for name, output in outputs.items():  # bf16 against float32 within bf16's rounding over 200 steps
        limit = 3e-2 if "bf16" in name else 1e-4
        require(max_relative_error([output], [outputs["nn.LSTM per step"]]), f"streaming {name}", limit)
    med = median_times(contenders, repeats)
    best = {
        "fp32": min(med["nn.LSTM per step"], med["nn.LSTMCell chain"]),
        "bf16": med["nn.LSTMCell chain, bf16"],
    }
    print(f"{'contender':<26} {'us/step':>9} {'faster torch of its type / this':>32}")
    for name, seconds in med.items():
        peer = best["bf16" if "bf16" in name else "fp32"]
        print(f"{name:<26} {seconds / steps * 1e6:>9.1f} {peer / seconds:>32.2f}")


# (name, T, B, input, hidden, layers, bidirectional): a one-step call, and the forecast and classify tasks'
# default networks at their training batch
CALL_SHAPES = [
    ("one step, 1 x 256", 1, 1, 256, 256, 1, False),
    ("one step, 2 x 256", 1, 1, 256, 256, 2, False),
    ("forecast, 1 x 32", 72, 32, 1, 32, 1, False),
    ("classify, bidir 32", 96, 8, 1, 32, 1, True),
]


def onnx_session(module, x):
    """An onnxruntime session of MODULE exported by torch.onnx (the current exporter), or None without
    onnxruntime; as many threads as torch's."""
    try:
        import onnxruntime
    except ImportError:
        return None
    import tempfile

    path = tempfile.mkdtemp() + "/lstm.onnx"
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # its notes on optional libraries
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Output(module).eval(), (x,), path, dynamo=True, verbose=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    # its threads would otherwise spin between runs, and on a small machine take the cores from the others
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(path, options)
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)[0]


class Output(torch.nn.Module):
    """The LSTM's output alone, for export."""

    def __init__(self, lstm):
        super().__init__()
        self.lstm = lstm

    def forward(self, x):
        return self.lstm(x)[0]


def per_call(repeats: int) -> None:
    """The per-call cost at small sizes, where the wrapper's Python work would show: inference (eval,
    no_grad) against torch.nn.LSTM and onnxruntime, forward+backward against torch.nn.LSTM."""
    print("\n## per call: inference and forward+backward, microseconds (ratio: peer / lstmkit)")
    print(
        f"{'shape':<20} {'T,B':>7} {'lstmkit':>8} {'torch':>8} {'onnxrt':>8} {'torch/ours':>10} "
        f"{'ort/ours':>9} {'train ours':>10} {'torch':>8} {'torch/ours':>10}"
    )
    for name, steps, batch, inp, hidden, layers, bidirectional in CALL_SHAPES:
        torch.manual_seed(0)
        ours = lstmkit.LSTM(inp, hidden, layers, bidirectional=bidirectional, backend=BACKEND).eval()
        theirs = torch.nn.LSTM(inp, hidden, layers, bidirectional=bidirectional).eval()
        theirs.load_state_dict(ours.state_dict())
        per_call_row(name, ours, theirs, torch.randn(steps, batch, inp), repeats)


def per_call_row(name: str, ours, theirs, x: torch.Tensor, repeats: int, calls: int = 200) -> None:
    contenders = {"lstmkit": infer(ours, x), "torch": infer(theirs, x)}
    ort = onnx_session(ours, x)
    if ort is not None:
        contenders["onnxrt"] = ort
        with torch.no_grad():
            require(max_relative_error([torch.from_numpy(ort())], [theirs(x)[0]]), f"onnxruntime {name}")
    with torch.no_grad():
        require(max_relative_error([ours(x)[0]], [theirs(x)[0]]), f"per call {name}")
    inference = median_times({k: repeated(v, calls) for k, v in contenders.items()}, repeats)
    x_grad = x.clone().requires_grad_()
    trains = {"lstmkit": train_step(ours, x_grad), "torch": train_step(theirs, x_grad)}
    training = median_times({k: repeated(v, calls // 10) for k, v in trains.items()}, repeats)
    us = {k: v / calls * 1e6 for k, v in inference.items()}
    train_us = {k: v / (calls // 10) * 1e6 for k, v in training.items()}
    ort_us = us.get("onnxrt", float("nan"))
    steps, batch = x.shape[:2]
    print(
        f"{name:<20} {f'{steps},{batch}':>7} {us['lstmkit']:>8.1f} {us['torch']:>8.1f} {ort_us:>8.1f} "
        f"{us['torch'] / us['lstmkit']:>10.2f} {ort_us / us['lstmkit']:>9.2f} "
        f"{train_us['lstmkit']:>10.1f} {train_us['torch']:>8.1f} "
        f"{train_us['torch'] / train_us['lstmkit']:>10.2f}"
    )


def repeated(run: Callable[[], object], times: int) -> Callable[[], None]:
    def many():
        for _ in range(times):
            run()

    return many


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--quick", action="store_true", help="two shapes in the grid, three repeats")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per row (the median is shown)")
    parser.add_argument(
        "--only", choices=["grid", "bf16", "variants", "ragged", "streaming", "per-call"], help="one table"
    )
    args = parser.parse_args()
    if "cpu" not in lstmkit.backends():
        raise SystemExit("the compiled CPU kernel is not available here; nothing to time")
    repeats = 3 if args.quick else args.repeats
    blas, ours = sgemm_gflops(repeats)
    print(f"machine: {machine.describe()}")
    print(f"large sgemm (2048^3): torch.mm {blas:.1f} GFLOP/s, lstmkit tiled GEMM {ours:.1f} GFLOP/s")
    peak = max(blas, ours)
    tables = {
        "grid": lambda: grid(repeats, args.quick, peak),
        "bf16": lambda: bf16_grid(repeats, args.quick),
        "variants": lambda: variants(repeats),
        "ragged": lambda: ragged(repeats),
        "streaming": lambda: streaming(repeats),
        "per-call": lambda: per_call(repeats),
    }
    for name, table in tables.items():
        if args.only in (None, name):
            table()


if __name__ == "__main__":
    main()
