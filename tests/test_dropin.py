"""lstmkit.LSTM through the PyTorch stack, as an engineer who swapped it for torch.nn.LSTM would use it:
torch.export, torch.compile with fullgraph, FakeTensorMode and the meta device, torch.func, autocast, and
torch.jit.trace's one clear refusal (ONNX: test_onnx.py). Each compares with eager lstmkit (itself checked
against torch.nn.LSTM and the reference elsewhere), on every backend."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import BACKENDS, FLOAT32_ATOL, assert_grads_close, torch_twin
from torch._subclasses.fake_tensor import FakeTensorMode

import lstmkit

# Deterministic in eval(): recurrent dropout is off there and zoneout is its expectation.
VARIANTS = {
    "vanilla": {},
    "bidirectional": {"bidirectional": True},
    "peephole": {"peephole": True},
    "layer_norm": {"layer_norm": True},
    "coupled_gates": {"coupled_gates": True},
    "proj_size": {"proj_size": 3},
    "zoneout": {"zoneout": (0.2, 0.3)},
    "everything": {"peephole": True, "coupled_gates": True, "bidirectional": True, "forget_bias": 1.0},
}
INPUT, HIDDEN, HEAD = 5, 6, 3


class Model(torch.nn.Module):
    """What an engineer ships: a 2-layer batch_first LSTM with a linear head on its last output."""

    def __init__(self, backend: str = "auto", **options):
        super().__init__()
        self.lstm = lstmkit.LSTM(INPUT, HIDDEN, num_layers=2, batch_first=True, backend=backend, **options)
        self.head = torch.nn.Linear(self.lstm.num_directions * self.lstm.output_size, HEAD)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y[:, -1])


def model(backend: str, variant: str) -> Model:
    torch.manual_seed(0)
    return Model(backend, **VARIANTS[variant]).eval()


def inputs(*shapes) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(batch, steps, INPUT, generator=generator) for batch, steps in shapes]


def gradients(m: torch.nn.Module, x: torch.Tensor, run=None) -> dict[str, torch.Tensor]:
    """Every parameter's gradient of a loss on m(x), or on run(x) (m compiled, say)."""
    m.zero_grad()
    (m if run is None else run)(x).square().sum().backward()
    return {name: p.grad.clone() for name, p in m.named_parameters()}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_export_runs_the_lstm_on_other_inputs(backend, variant):
    """The exported program computes the LSTM (no constant baked in): it matches eager on inputs other
    than the example, batch and length dynamic on the cpu kernel (the Python loops unroll over time)."""
    m = model(backend, variant)
    example, *fresh = inputs((4, 7), (3, 7), (6, 7)) if backend != "cpu" else inputs((4, 7), (3, 11), (6, 2))
    batch, steps = torch.export.Dim("batch"), torch.export.Dim("steps")
    dims = {0: batch, 1: steps} if backend == "cpu" else {0: batch}
    program = torch.export.export(m, (example,), dynamic_shapes=({**dims},))
    for x in fresh:
        torch.testing.assert_close(program.module()(x), m(x), rtol=0, atol=FLOAT32_ATOL)
    assert any("lstmkit" in str(node.target) for node in program.graph.nodes) == (backend == "cpu")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_compile_fullgraph_has_no_graph_break_and_matches_eager_with_gradients(backend, variant):
    m = model(backend, variant)
    (x,) = inputs((4, 7))
    explanation = torch._dynamo.explain(m)(x)
    assert explanation.graph_break_count == 0, [b.reason for b in explanation.break_reasons]
    torch._dynamo.reset()
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), m(x), rtol=0, atol=FLOAT32_ATOL)
    expected, actual = gradients(m, x), gradients(m, x, compiled)
    for name in expected:
        assert_grads_close(expected[name], actual[name])


def test_compile_with_inductor_matches_eager():
    """The default compiler (inductor) around the kernel's ops, forward and backward."""
    m = model("auto", "vanilla")
    (x,) = inputs((4, 7))
    torch._dynamo.reset()
    compiled = torch.compile(m, fullgraph=True)
    torch.testing.assert_close(compiled(x), m(x), rtol=0, atol=FLOAT32_ATOL)
    expected, actual = gradients(m, x), gradients(m, x, compiled)
    for name in expected:
        assert_grads_close(expected[name], actual[name])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_fake_tensors_and_the_meta_device_give_eager_shapes(backend, variant):
    (x,) = inputs((4, 7))
    expected = model(backend, variant)(x).shape
    with FakeTensorMode() as mode:
        fake = Model(backend, **VARIANTS[variant])(mode.from_tensor(x))
    with torch.device("meta"):
        meta = Model(backend, **VARIANTS[variant])(torch.empty(4, 7, INPUT))
    assert fake.shape == meta.shape == expected
    assert meta.device.type == "meta"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_func_grad_and_vjp_match_autograd(backend, variant):
    m = model(backend, variant)
    (x,) = inputs((4, 7))
    params = {name: p.detach() for name, p in m.named_parameters()}

    def loss(p, x):
        return torch.func.functional_call(m, p, (x,)).square().sum()

    expected = gradients(m, x)
    actual = torch.func.grad(loss)(params, x)
    for name in expected:
        assert_grads_close(expected[name], actual[name])
    x_grad = x.clone().requires_grad_()
    loss(params, x_grad).backward()
    _, pullback = torch.func.vjp(lambda x: loss(params, x), x)
    assert_grads_close(x_grad.grad, pullback(torch.tensor(1.0))[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_vmap_over_a_leading_axis_runs_each_slice_as_its_own_batch(backend):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True, backend=backend).eval()
    x = torch.randn(3, 7, 2, INPUT)  # vmapped (3), then T, B, I
    actual = torch.func.vmap(lambda xi: lstm(xi)[0])(x)
    torch.testing.assert_close(actual, torch.stack([lstm(xi)[0] for xi in x]), rtol=0, atol=FLOAT32_ATOL)


def test_vmap_over_weights_or_with_lengths_is_refused_in_one_line():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(INPUT, HIDDEN, backend="cpu" if "cpu" in BACKENDS else "bptt").eval()
    stacked = {name: torch.stack([p.detach()] * 2) for name, p in lstm.named_parameters()}
    x = torch.randn(7, 2, INPUT)
    with pytest.raises(ValueError, match="vmap.*weights"):
        torch.func.vmap(lambda p: torch.func.functional_call(lstm, p, (x,))[0])(stacked)
    lengths = torch.tensor([7, 3])
    with pytest.raises(ValueError, match="vmap.*lengths="):
        torch.func.vmap(lambda xi: lstm(xi, lengths=lengths)[0])(torch.stack([x, x]))


def test_jit_trace_is_refused_pointing_to_torch_export():
    m = model("auto", "vanilla")
    with pytest.raises(RuntimeError, match=r"torch\.jit\.trace.*torch\.export\.export"):
        torch.jit.trace(m, tuple(inputs((4, 7))))


# autocast --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_state", [False, True])
def test_autocast_follows_torch_lstm_cast_policy(backend, with_state):
    """Under CPU autocast to bfloat16, torch.nn.LSTM runs input, state and weights in bfloat16 and returns
    bfloat16 output and state; lstmkit does the same: exactly its bfloat16 module on the cast input, and
    close to torch's own result under the same autocast."""
    torch.manual_seed(0)
    ours = lstmkit.LSTM(INPUT, HIDDEN, num_layers=2, backend=backend)
    theirs = torch_twin(ours)
    x = torch.randn(7, 3, INPUT)
    hx = (torch.randn(2, 3, HIDDEN), torch.randn(2, 3, HIDDEN)) if with_state else None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (h, c) = ours(x, hx)
        their_out, (their_h, their_c) = theirs(x, hx)
    assert out.dtype == h.dtype == c.dtype == their_out.dtype == their_h.dtype == their_c.dtype
    bf16 = copy.deepcopy(ours).to(torch.bfloat16)
    cast_hx = None if hx is None else tuple(t.bfloat16() for t in hx)
    expected, (expected_h, expected_c) = bf16(x.bfloat16(), cast_hx)
    for a, e in ((out, expected), (h, expected_h), (c, expected_c)):
        torch.testing.assert_close(a, e, rtol=0, atol=0)
    torch.testing.assert_close(out.float(), their_out.float(), rtol=0, atol=0.05)


def test_autocast_trains_the_float32_weights(backend):
    """The weights stay float32 (the master copy); their gradients arrive in float32 through the cast."""
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(INPUT, HIDDEN, backend=backend)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = lstm(torch.randn(7, 3, INPUT))
    out.float().square().sum().backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in lstm.parameters())
    assert all(p.grad.abs().sum() > 0 for p in lstm.parameters())
