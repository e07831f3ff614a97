"""bf16: the kernel's bf16 loops (bf16 products, float32 gates and cell) against the float64 reference, and
the float32 loops on float32 copies where the CPU has no bf16 products or a size cannot pair."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import loss_of, torch_twin
from test_backends import VARIANTS

import lstmkit
from lstmkit.backend import cpu
from lstmkit.parameters import gate_weights

needs_bf16 = pytest.mark.skipif(
    "cpu" not in lstmkit.backends() or not cpu.bf16_loops(),
    reason="the CPU kernel does not build here, or this CPU has no bf16 products",
)
needs_kernel = pytest.mark.skipif(
    "cpu" not in lstmkit.backends(), reason="the CPU kernel does not build here"
)

# Even sizes: the bf16 products pair the rows of every operand (odd ones run upcast, tested below).
SIZES = {"input_size": 16, "hidden_size": 32, "num_layers": 2, "bidirectional": True}
EVEN_VARIANTS = {
    name: {**options, "proj_size": 16} if "proj_size" in options else options
    for name, options in VARIANTS.items()
}
EVEN_VARIANTS["projection"] = {"proj_size": 16}


def run(lstm, x, lengths=None, seed=7) -> list[torch.Tensor]:
    """Output, states, the trace and every gradient, as float64."""
    xi = x.clone().requires_grad_()
    lstm.zero_grad()
    torch.manual_seed(seed)  # the same dropout and zoneout masks in every run
    out, (h, c), trace = lstm(xi, lengths=lengths, return_trace=True)
    loss_of(out.double(), h.double(), c.double()).backward()
    values = [out, h, c, *trace.as_dict().values(), xi.grad, *[p.grad for p in lstm.parameters()]]
    return [v.detach().double() for v in values]


def relative_errors(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> list[float]:
    return [((a - e).abs().max() / e.abs().max().clamp_min(1e-30)).item() for a, e in zip(actual, expected)]


def bf16_and_reference(options: dict, steps: int = 12, batch: int = 5):
    """A bf16 module and the float64 reference on the same (bf16-rounded) weights and input."""
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(**SIZES, **options).to(torch.bfloat16).train()
    reference = lstmkit.LSTM(**SIZES, **options, backend="reference", dtype=torch.float64).train()
    reference.load_state_dict({k: v.double() for k, v in lstm.state_dict().items()})
    x = torch.randn(steps, batch, SIZES["input_size"]).bfloat16()
    return lstm, reference, x


@needs_bf16
@pytest.mark.parametrize("variant", EVEN_VARIANTS)
def test_bf16_loops_match_the_float64_reference_for_every_variant(monkeypatch, variant):
    """Forward, trace and every gradient of a bf16 module, ragged batch, training mode, against float64 on
    the same bf16 weights and input: within 1e-2 relative (2.5 units of bf16's 2^-8) for all of them.
    Layer norm over a few units amplifies the rounding of its inputs (the output rounded to bf16 feeds the
    next layer) whatever the arithmetic: there the bound is the float32 loops' error on the same bf16
    module (upcast), which the bf16 loops' own roundings (h, m and the gradients da, dhh) may not exceed by
    more than a quarter."""
    lstm, reference, x = bf16_and_reference(EVEN_VARIANTS[variant])
    lengths = torch.tensor([12, 9, 9, 4, 1])
    assert cpu.loop_kind(gate_weights(lstm, "_l0"), x) == "bf16"
    expected = run(reference, x.double(), lengths)
    errors = relative_errors(run(lstm, x, lengths), expected)
    if not EVEN_VARIANTS[variant].get("layer_norm"):
        assert max(errors) < 1e-2, errors
        return
    monkeypatch.setattr(cpu, "_BF16_PRODUCTS", [False])
    upcast = relative_errors(run(lstm, x, lengths), expected)
    assert max(errors) <= 1.25 * max(upcast), (max(errors), max(upcast))


@needs_bf16
@pytest.mark.parametrize("options", [{}, {"proj_size": 4}], ids=["vanilla", "projection"])
def test_bf16_error_no_larger_than_torch_nn_lstm_in_bf16(options):
    """Against float64 on the same bf16 weights and input, lstmkit's bf16 output and gradients are no less
    accurate than torch.nn.LSTM's in bf16 (the largest relative error over all of them, with 10% slack for
    two different orders of rounding)."""
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(32, 64, **options).to(torch.bfloat16)
    theirs = torch_twin(lstm)
    reference = torch_twin(lstm).double()
    x = torch.randn(40, 8, 32).bfloat16()

    def grads(module, x):
        module.zero_grad()
        xi = x.clone().requires_grad_()
        out, (h, c) = module(xi)
        loss_of(out.double(), h.double(), c.double()).backward()
        return [t.detach().double() for t in (out, h, c, xi.grad, *[p.grad for p in module.parameters()])]

    expected = grads(reference, x.double())
    ours = max(relative_errors(grads(lstm, x), expected))
    torch_error = max(relative_errors(grads(theirs, x), expected))
    assert ours <= 1.1 * torch_error, (ours, torch_error)


@needs_bf16
def test_bf16_cell_state_keeps_float32_over_a_thousand_steps():
    """A forget gate near 1 and a small constant input: c_t grows by about 0.004 per step to about 4 after
    1,000 steps. Rounded to bf16 every step (its spacing is 0.016 at 2-4) the increments would be lost;
    kept in float32, c_{T-1} (the trace's float32 cell) stays within 1e-4 of the float64 reference's."""
    steps, hidden = 1000, 8
    lstm = lstmkit.LSTM(2, hidden, forget_bias=0.0)
    with torch.no_grad():
        for p in lstm.parameters():
            p.zero_()
        lstm.bias_ih_l0[hidden : 2 * hidden] = 9.0  # f = σ(9) ≈ 0.9999
        lstm.bias_ih_l0[:hidden] = -5.5  # i = σ(-5.5) ≈ 0.004
        lstm.bias_ih_l0[2 * hidden : 3 * hidden] = 3.0  # g = tanh(3) ≈ 0.995
    x = torch.zeros(steps, 1, 2)
    reference = lstmkit.LSTM(2, hidden, forget_bias=0.0, backend="reference", dtype=torch.float64)
    reference.load_state_dict({k: v.bfloat16().double() for k, v in lstm.state_dict().items()})
    lstm = lstm.to(torch.bfloat16)
    with torch.no_grad():
        *_, trace = lstm(x.bfloat16(), return_trace=True)
        *_, expected = reference(x.double(), return_trace=True)
    cell, expected_cell = trace.cell[0, -2, 0], expected.cell[0, -2, 0]  # c_{T-1}: float32 (c_T is bf16)
    assert cell.dtype == torch.float32 and expected_cell.min() > 3.0
    torch.testing.assert_close(cell.double(), expected_cell, rtol=1e-4, atol=0)
    # the same recurrence with c rounded to bf16 every step misses by far more: the bound can fail
    c = torch.zeros(hidden, dtype=torch.bfloat16)
    f, i, g = torch.tensor(9.0).sigmoid(), torch.tensor(-5.5).sigmoid(), torch.tensor(3.0).tanh()
    for _ in range(steps - 1):
        c = (f * c.float() + i * g).bfloat16()
    assert (c.double() - expected_cell).abs().max() > 1e-2 * expected_cell.abs().max()


@needs_kernel
@pytest.mark.skipif(not cpu.cpu_flags(), reason="no /proc/cpuinfo to read the CPU's instruction sets from")
def test_the_bf16_loops_run_where_the_cpu_has_bf16_dot_products():
    """AMX tiles or AVX512-BF16 (an AMD EPYC has the second only): the bf16 loops; neither: float32 copies."""
    assert cpu.bf16_loops() == bool({"amx_bf16", "avx512_bf16"} & set(cpu.cpu_flags()))


@needs_kernel
@pytest.mark.parametrize(
    "sizes", [(6, 8, None), (5, 7, None), (6, 8, 3)], ids=["even", "odd", "odd-projection"]
)
def test_bf16_without_bf16_products_runs_the_float32_loops_on_copies(monkeypatch, sizes):
    """Where the CPU has no bf16 products (forced here), or at a size that cannot pair (odd H or P), a bf16
    module runs the float32 loops on float32 copies: exactly the float32 module on the upcast weights,
    output and gradients rounded to bf16 once."""
    inputs, hidden, proj = sizes
    options = {"proj_size": proj} if proj else {}
    if sizes == (6, 8, None):
        monkeypatch.setattr(cpu, "_BF16_PRODUCTS", [False])
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(inputs, hidden, **options).to(torch.bfloat16)
    assert cpu.loop_kind(gate_weights(lstm, "_l0"), torch.empty(0, dtype=torch.bfloat16)) == "upcast"
    upcast = lstmkit.LSTM(inputs, hidden, **options)
    upcast.load_state_dict({k: v.float() for k, v in lstm.state_dict().items()})
    x = torch.randn(7, 4, inputs).bfloat16()
    out, (h, c) = lstm(x)
    expected, (expected_h, expected_c) = upcast(x.float())
    assert out.dtype == h.dtype == c.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected.bfloat16(), rtol=0, atol=0)
    torch.testing.assert_close(c, expected_c.bfloat16(), rtol=0, atol=0)
    out.float().square().sum().backward()
    expected.square().sum().backward()
    # the gradients meet in float32 products and are rounded to bf16 at the end
    for p, q in zip(lstm.parameters(), upcast.parameters()):
        torch.testing.assert_close(p.grad.float(), q.grad, rtol=2e-2, atol=2e-2 * q.grad.abs().max().item())


@needs_bf16
@pytest.mark.parametrize("inner", [64, 33])
def test_bf16_products_land_in_float32(inner):
    """The kernel's bf16 matrix product at an even and an odd inner size, with b as it lies or as a
    transposed view (packed either way), and a^T b for a transposed in memory (the weight gradients' sums
    over T*B rows): float32, within float32 rounding of the float64 product of the same bf16 operands (no
    bf16 rounding of the result). Below 64 rows (a one-step call's input projection) torch's bf16 product
    runs: within bf16's rounding, in float32 too."""
    torch.manual_seed(0)
    a, b = torch.randn(200, inner).bfloat16(), torch.randn(inner, 48).bfloat16()
    bias = torch.randn(48)
    product = cpu.kernel_matmul(a, b, bias)
    assert product.dtype == torch.float32
    expected = a.double() @ b.double() + bias.double()
    torch.testing.assert_close(product.double(), expected, rtol=1e-5, atol=1e-5)
    weight = b.t().contiguous()  # b as a weight's transpose (the input projection's W_ih^T)
    torch.testing.assert_close(cpu.kernel_matmul(a, weight.t(), bias), product, rtol=0, atol=0)
    k_rows = torch.randn(200, 96).bfloat16()
    gradient = cpu.kernel_matmul(k_rows.t(), a)  # (96, 200) @ (200, inner)
    assert gradient.dtype == torch.float32
    torch.testing.assert_close(gradient.double(), k_rows.double().t() @ a.double(), rtol=1e-5, atol=1e-4)
    small = cpu.kernel_matmul(a[:8], b, bias)
    assert small.dtype == torch.float32
    torch.testing.assert_close(
        small.double(), expected[:8], rtol=8e-3, atol=8e-3 * expected.abs().max().item()
    )


@needs_bf16
def test_bf16_module_compiles_fullgraph_and_matches_eager():
    """The custom ops' fake kernels give the bf16 loops' types: torch.compile(fullgraph=True) of a bf16
    module, forward and backward, equals eager."""
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(6, 8, proj_size=4).to(torch.bfloat16)
    x = torch.randn(5, 3, 6).bfloat16()
    compiled = torch.compile(lstm, backend="aot_eager", fullgraph=True)
    expected = run(lstm, x)
    actual = run(compiled, x)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=0, atol=0)


def stream(sizes: tuple[int, int, int], options: dict, steps: int, batch: int):
    """A bf16 module (input, hidden, layers SIZES) stepped through random bf16 input from its
    initial_state, and the float64 sequence on the same weights: (outputs, state, expected, expected_c)."""
    inputs, hidden, layers = sizes
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(inputs, hidden, layers, **options).eval().to(torch.bfloat16)
    reference = lstmkit.LSTM(inputs, hidden, layers, **options, backend="reference", dtype=torch.float64)
    reference.load_state_dict({k: v.double() for k, v in lstm.state_dict().items()})
    xs = torch.randn(steps, batch, inputs).bfloat16()
    with torch.no_grad():
        expected, (_, expected_c) = reference.eval()(xs.double())
        state = lstm.initial_state(batch)
        assert state[0].dtype == torch.bfloat16 and state[1].dtype == torch.float32
        assert lstm._one_step(xs[0], state) is not None  # the step kernel takes it
        outputs = []
        for x in xs:
            y, state = lstm.step(x, state)
            outputs.append(y)
    return lstm, xs, torch.stack(outputs), state, expected, expected_c


@needs_bf16
@pytest.mark.parametrize(
    "options",
    [{}, {"proj_size": 8}, {"peephole": True, "coupled_gates": True}, {"zoneout": 0.2}],
    ids=["vanilla", "projection", "peephole+coupled", "zoneout"],
)
def test_bf16_streaming_runs_the_step_kernel_with_a_float32_cell(options):
    """A bf16 module's step runs the step kernel (bf16 products on VNNI-packed weights) with the cell in
    float32 from step to step: 200 steps within 1e-2 of the float64 sequence on the same bf16 weights and
    input, c in float32 throughout; a bf16 c is taken too, and forward takes the float32 one."""
    lstm, xs, outputs, (h, c), expected, expected_c = stream((6, 16, 2), options, steps=200, batch=3)
    assert outputs.dtype == h.dtype == torch.bfloat16 and c.dtype == torch.float32
    errors = relative_errors([outputs.double(), c.double()], [expected, expected_c])
    assert max(errors) < 1e-2, errors
    with torch.no_grad():
        y_bf16_cell, (_, c_next) = lstm.step(xs[0], (h, c.bfloat16()))
        y_float_cell, _ = lstm.step(xs[0], (h, c))
        assert c_next.dtype == torch.float32
        torch.testing.assert_close(y_bf16_cell.float(), y_float_cell.float(), rtol=0, atol=2e-2)
        out, (_, c_n) = lstm(xs[:5], (h, c))  # forward: the float32 cell taken, given back in bf16
    assert out.dtype == c_n.dtype == torch.bfloat16


@needs_bf16
@pytest.mark.parametrize("batch", [1, 3], ids=["B=1", "B=3"])
def test_bf16_step_multiplies_the_weights_as_they_lie_at_one_or_two_rows(batch):
    """At one or two rows the bf16 step reads the module's own weights (AVX512-BF16's pair dot products
    or widened values), so a write to a weight's .data, which no version counter sees, is seen at the next
    step; beyond, it multiplies VNNI copies made again after each recorded write (here, in place through
    the parameter)."""
    lstm, xs, outputs, (h, c), expected, _ = stream((6, 16, 2), {"peephole": True}, steps=5, batch=batch)
    with torch.no_grad():
        if batch == 1:
            lstm.weight_ih_l0.data.mul_(-1.0)  # 6 inputs: rows_dot's masked load pairs them with zeros
            lstm.bias_hh_l1.data.add_(0.5)
            lstm.weight_cf_l0.data.add_(0.5)
        else:
            lstm.weight_ih_l0.mul_(-1.0)
            lstm.bias_hh_l1.add_(0.5)
            lstm.weight_cf_l0.add_(0.5)
        changed, _ = lstm.step(xs[0], (h, c))
        sequence, _ = lstm(xs[:2], (h, c))  # two steps: the sequence loops, not the step kernel
    torch.testing.assert_close(changed.float(), sequence[0].float(), rtol=0, atol=2e-2)


INTERLEAVED = """
import torch, lstmkit
cell, lstm = torch.nn.LSTMCell(256, 256).bfloat16(), lstmkit.LSTM(256, 256, 2).eval().bfloat16()
with torch.no_grad():
    state = lstm.initial_state(1)
    for _ in range(3):
        y, state = lstm.step(torch.randn(1, 256).bfloat16(), state)
        cell(torch.randn(1, 256).bfloat16())
"""


@needs_bf16
def test_bf16_kernels_between_torch_bf16_products_run():
    """torch's own bf16 products (oneDNN, AMX tiles at these sizes) between the kernel's: each of the
    kernel's calls hands the tile state back, so the next finds it configured (else the CPU stops the
    process with an illegal instruction; hence a process of its own here)."""
    done = subprocess.run([sys.executable, "-c", INTERLEAVED], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@needs_bf16
@pytest.mark.parametrize("options", [{}, {"proj_size": 128}], ids=["vanilla", "projection"])
def test_bf16_streaming_split_over_two_threads_matches_the_float64_sequence(options):
    """Large enough (2 x 256 units at B=1) for the bf16 step to split its units over two threads: 50
    steps within 1e-2 of the float64 sequence on the same bf16 weights and input."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _, _, outputs, (_, c), expected, expected_c = stream((256, 256, 2), options, steps=50, batch=1)
    finally:
        torch.set_num_threads(threads)
    errors = relative_errors([outputs.double(), c.double()], [expected, expected_c])
    assert max(errors) < 1e-2, errors


@needs_bf16
def test_autocast_weight_gradients_come_back_in_float32_unrounded():
    """Under torch.autocast the kernel casts the float32 master weights itself: their gradients are the
    float32 sums of the products, not rounded to bf16 first (values bf16 cannot hold), and agree with the
    bf16 module's gradients within bf16's rounding."""
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(16, 32, peephole=True)
    x = torch.randn(20, 8, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = lstm(x)
    out.float().square().sum().backward()
    bf16 = lstmkit.LSTM(16, 32, peephole=True).to(torch.bfloat16)
    bf16.load_state_dict(lstm.state_dict())
    bf16(x.bfloat16())[0].float().square().sum().backward()
    for (name, p), q in zip(lstm.named_parameters(), bf16.parameters()):
        assert p.grad.dtype == torch.float32
        assert not torch.equal(p.grad, p.grad.bfloat16().float()), f"{name}'s gradient was rounded to bf16"
        scale = p.grad.abs().max().item()
        torch.testing.assert_close(q.grad.float(), p.grad, rtol=2e-2, atol=2e-2 * scale)
