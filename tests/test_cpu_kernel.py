"""The compiled CPU backend's packaging: where it cannot be built, one warning and "auto" falls back."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

import lstmkit
from lstmkit.backend import cpu, resolve
from lstmkit.functional import StepCache, StepGrads
from lstmkit.parameters import gate_weights


@pytest.fixture
def unbuildable(monkeypatch):
    """Make the build fail as it would with no compiler, and restore the real kernel afterwards."""
    from torch.utils import cpp_extension

    def fail(*args, **kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions")

    cpu.kernel.cache_clear()
    monkeypatch.setattr(cpp_extension, "load", fail)
    yield
    monkeypatch.undo()
    cpu.kernel.cache_clear()


def test_without_a_compiler_auto_falls_back_to_bptt_with_one_warning(unbuildable):
    with pytest.warns(UserWarning, match=r"compiled CPU kernel is not available \(Ninja is required"):
        names = lstmkit.backends()
    assert names[0] == "bptt" and "cpu" not in names
    assert resolve("auto").name == "bptt"
    with pytest.raises(ValueError, match=r"unavailable backend 'cpu'"):
        lstmkit.LSTM(2, 3, backend="cpu")
    lstm = lstmkit.LSTM(2, 3)  # "auto" still trains, on bptt, and warns no more
    out, _ = lstm(torch.randn(4, 1, 2, requires_grad=True))
    out.sum().backward()


@pytest.mark.skipif("cpu" not in lstmkit.backends(), reason="the CPU kernel does not build here")
@pytest.mark.parametrize("fields", [StepCache, StepGrads], ids=lambda t: t.__name__)
def test_a_kernel_whose_field_order_differs_from_python_is_refused_at_load(monkeypatch, fields):
    """The caches and gradients cross the boundary as lists in the kernel's field order: were a field of the
    Python NamedTuple moved (here its first two swapped), the backend is refused with one warning, as when
    it does not build, rather than run mis-wired. The real NamedTuples agree with the kernel."""
    assert tuple(cpu.kernel().step_cache_fields()) == StepCache._fields
    assert tuple(cpu.kernel().step_grads_fields()) == StepGrads._fields
    names = fields._fields[1::-1] + fields._fields[2:]
    reordered = NamedTuple(fields.__name__, [(name, torch.Tensor) for name in names])
    cpu.kernel.cache_clear()
    monkeypatch.setattr(cpu, fields.__name__, reordered)
    kernel_order = ", ".join(fields._fields)
    expected = rf"compiled CPU kernel is not available \(its {fields.__name__} fields \({kernel_order}\)"
    with pytest.warns(UserWarning, match=expected):
        assert "cpu" not in lstmkit.backends()
    assert resolve("auto").name == "bptt"
    monkeypatch.undo()
    cpu.kernel.cache_clear()
    assert "cpu" in lstmkit.backends()


@pytest.mark.skipif("cpu" not in lstmkit.backends(), reason="the CPU kernel does not build here")
def test_kernel_leaves_other_float_types_to_the_python_loops():
    """float16 is not compiled (float32, float64 and bf16 are): the cpu backend runs the same loops in
    Python and still agrees."""
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 4, backend="cpu").to(torch.float16)
    assert cpu.loop_kind(gate_weights(lstm, "_l0"), torch.empty(0, dtype=torch.float16)) is None
    x = torch.randn(5, 2, 3, dtype=torch.float16)
    expected, _ = lstm.float()(x.float())
    actual, _ = lstm.to(torch.float16)(x)
    assert actual.dtype == torch.float16
    torch.testing.assert_close(actual.float(), expected, rtol=0, atol=3e-3)


needs_kernel = pytest.mark.skipif(
    "cpu" not in lstmkit.backends(), reason="the CPU kernel does not build here"
)


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@needs_kernel
@pytest.mark.parametrize(
    "options",
    [{}, {"layer_norm": True, "peephole": True}, {"proj_size": 40, "recurrent_dropout": 0.3, "zoneout": 0.2}],
    ids=["vanilla", "layer_norm+peephole", "projection+dropout+zoneout"],
)
def test_threaded_time_loop_equals_the_python_loop(two_threads, options):
    """Large enough for the kernel to split each step over two threads (columns of the products, rows of
    the gate arithmetic), with a ragged batch: outputs, states and every gradient equal the bptt loop's."""
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(20, 96, 2, bidirectional=True, dtype=torch.float64, **options).train()
    x = torch.randn(9, 16, 20, dtype=torch.float64)
    lengths = torch.randint(1, 10, (16,))
    results = []
    for backend in ("bptt", "cpu"):
        lstm.backend = backend
        lstm.zero_grad()
        xi = x.clone().requires_grad_()
        torch.manual_seed(1)
        out, (h, c) = lstm(xi, lengths=lengths)
        (out.square().sum() + h.sum() + c.square().sum()).backward()
        results.append([out, h, c, xi.grad, *[p.grad.clone() for p in lstm.parameters()]])
    for actual, expected in zip(results[1], results[0]):
        torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12)


@needs_kernel
@pytest.mark.parametrize("transposed", [False, True])
def test_tiled_matmul_equals_torch_mm(two_threads, transposed):
    """Shapes that leave partial tiles in every dimension (rows 64, columns 256, inner 512)."""
    torch.manual_seed(0)
    a = torch.randn(1100, 130) if transposed else torch.randn(130, 1100)
    a = a.t() if transposed else a  # (130, 1100): a^T @ b is how the weight gradients are formed
    b = torch.randn(1100, 300)
    torch.testing.assert_close(cpu.kernel_matmul(a, b), a @ b, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(cpu.kernel_matmul(b.t(), a.t()), b.t() @ a.t(), rtol=1e-4, atol=1e-3)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("columns", [(48, 200), (200, 48), (130, 130)])
def test_transposed_product_of_the_weight_gradients_equals_torch(two_threads, dtype, columns):
    """a^T b over many rows, whichever operand has fewer columns (it is transposed), b of any strides."""
    torch.manual_seed(0)
    a, b = torch.randn(777, columns[0], dtype=dtype), torch.randn(777, columns[1], dtype=dtype)
    expected = a.double().t() @ b.double()
    torch.testing.assert_close(cpu.kernel().matmul_tn(a=a, b=b).double(), expected, rtol=1e-4, atol=1e-3)
    wide = torch.randn(777, 2 * columns[1], dtype=dtype)[:, ::2]  # b as a strided view
    expected = a.double().t() @ wide.double()
    torch.testing.assert_close(cpu.kernel().matmul_tn(a=a, b=wide).double(), expected, rtol=1e-4, atol=1e-3)


@needs_kernel
@pytest.mark.parametrize("with_bias", [False, True])
def test_kernel_layer_norm_equals_torch_forward_and_backward(two_threads, with_bias):
    """The input projection's layer norm in the kernel against torch's fused op, in float64."""
    from lstmkit.functional import torch_layer_norm, torch_layer_norm_backward

    torch.manual_seed(0)
    x = torch.randn(333, 96, dtype=torch.float64) * 3 + 1
    gain, bias = torch.rand(96, dtype=torch.float64) + 0.5, torch.randn(96, dtype=torch.float64)
    bias = bias if with_bias else None
    y, stats = cpu.kernel_layer_norm(x, gain, bias)
    y_ref, stats_ref = torch_layer_norm(x, gain, bias)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(stats, stats_ref)
    dy = torch.randn_like(x)
    for actual, expected in zip(
        cpu.kernel_layer_norm_backward(dy, x, stats, gain), torch_layer_norm_backward(dy, x, stats, gain)
    ):
        torch.testing.assert_close(actual, expected)


@needs_kernel
def test_float_gate_functions_are_within_5e_7_of_exact():
    """The kernel's float sigmoid and tanh (inline polynomials, not the C library's) against float64, on
    pre-activations from tiny to saturated: the input weights copy x into every gate, the rest is 0."""
    hidden = 64
    lstm = lstmkit.LSTM(hidden, hidden, backend="cpu")
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.eye(hidden).repeat(4, 1))  # a = x for i, f, g and o
        for p in (lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0):
            p.zero_()
    magnitudes = torch.logspace(-8, 2, 1024, dtype=torch.float64)
    a = torch.cat([magnitudes, -magnitudes, torch.linspace(-20, 20, 62 * 1024, dtype=torch.float64)])
    x = a.float().reshape(1, -1, hidden)  # (T=1, B, H)
    trace = lstm(x, return_trace=True)[2]
    exact = x.double()
    for name, value, expected in [
        ("sigmoid", trace.forget_gate[0, 0], torch.sigmoid(exact[0])),
        ("tanh", trace.candidate[0, 0], torch.tanh(exact[0])),
    ]:
        error = ((value.double() - expected).abs() / expected.abs().clamp_min(1e-30)).max().item()
        assert error < 5e-7, f"{name}: relative error {error:.2e}"
