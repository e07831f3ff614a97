"""lstmkit.LSTM through the PyTorch stack, as an engineer who swapped it for torch.nn.LSTM would use it:
torch.export, torch.compile with fullgraph, FakeTensorMode and the meta device, torch.func, both ONNX
exporters run in onnxruntime on fresh inputs, and torch.jit.trace's one clear refusal. Each compares with
eager lstmkit (itself checked against torch.nn.LSTM and the reference elsewhere), on every backend."""

from __future__ import annotations

import pytest
import torch
from conftest import BACKENDS, FLOAT32_ATOL, assert_grads_close
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
ONNX_VARIANTS = ["vanilla", "bidirectional", "peephole", "coupled_gates", "everything"]
ONNX_REFUSED = {"layer_norm": "layer_norm=True", "proj_size": "proj_size=3", "zoneout": "zoneout="}
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


def test_vmap_over_weights_is_refused_in_one_line():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(INPUT, HIDDEN, backend="cpu" if "cpu" in BACKENDS else "bptt").eval()
    stacked = {name: torch.stack([p.detach()] * 2) for name, p in lstm.named_parameters()}
    x = torch.randn(7, 2, INPUT)
    with pytest.raises(ValueError, match="vmap.*weights"):
        torch.func.vmap(lambda p: torch.func.functional_call(lstm, p, (x,))[0])(stacked)


def test_jit_trace_is_refused_pointing_to_torch_export():
    m = model("auto", "vanilla")
    with pytest.raises(RuntimeError, match=r"torch\.jit\.trace.*torch\.export\.export"):
        torch.jit.trace(m, tuple(inputs((4, 7))))


# ONNX ------------------------------------------------------------------------------------------------------

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
import onnx  # noqa: E402  (after the skips: a test dependency)


def export_onnx(m: torch.nn.Module, example: tuple, path, dynamo: bool, names=("x",)):
    if dynamo:
        dims = [{0: torch.export.Dim("batch"), 1: torch.export.Dim("steps")}] + [{0: "batch"}] * (
            len(names) - 1
        )
        torch.onnx.export(m, example, path, dynamo=True, dynamic_shapes=tuple(dims))
    else:
        axes = {"x": {0: "batch", 1: "steps"}, **{name: {0: "batch"} for name in names[1:]}}
        torch.onnx.export(m, example, path, dynamo=False, input_names=list(names), dynamic_axes=axes)
    graph = onnx.load(path).graph
    return onnxruntime.InferenceSession(str(path)), [node.op_type for node in graph.node]


def run_onnx(session, *arrays):
    feeds = {i.name: a.numpy() for i, a in zip(session.get_inputs(), arrays)}
    return torch.from_numpy(session.run(None, feeds)[0])


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
@pytest.mark.parametrize("variant", ONNX_VARIANTS)
def test_onnx_export_is_one_onnx_lstm_per_layer_and_computes_on_fresh_inputs(tmp_path, variant, dynamo):
    m = model("auto", variant)
    example, *fresh = inputs((4, 7), (3, 11), (1, 1), (6, 2))
    session, ops = export_onnx(m, (example,), tmp_path / "model.onnx", dynamo)
    assert ops.count("LSTM") == 2
    outputs = []
    for x in fresh:
        outputs.append(run_onnx(session, x))
        torch.testing.assert_close(outputs[-1], m(x).detach(), rtol=0, atol=FLOAT32_ATOL)
    # the output follows the input: a graph with the example's result baked in would fail here
    same_shape = run_onnx(session, fresh[0] + 1.0)
    assert (same_shape - outputs[0]).abs().max() > 1e-3


class WithLengths(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = lstmkit.LSTM(INPUT, HIDDEN, bidirectional=True, batch_first=True)

    def forward(self, x, lengths):
        y, (h, c) = self.lstm(x, lengths=lengths)
        return torch.cat([y.sum(1), h[0], h[1], c[0]], dim=-1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_onnx_export_of_padded_batches_uses_sequence_lens(tmp_path, dynamo):
    torch.manual_seed(0)
    m = WithLengths().eval()
    example, x = inputs((3, 6), (4, 9))
    lengths = torch.tensor([9, 2, 5, 1])
    session, ops = export_onnx(
        m, (example, torch.tensor([6, 3, 4])), tmp_path / "m.onnx", dynamo, ("x", "lengths")
    )
    assert ops.count("LSTM") == 1
    torch.testing.assert_close(run_onnx(session, x, lengths), m(x, lengths), rtol=0, atol=FLOAT32_ATOL)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
@pytest.mark.parametrize("variant", ONNX_REFUSED)
def test_onnx_export_refuses_what_onnx_cannot_express_naming_the_option(tmp_path, variant, dynamo):
    m = model("auto", variant)
    with pytest.raises(Exception) as raised:
        torch.onnx.export(m, tuple(inputs((4, 7))), tmp_path / "m.onnx", dynamo=dynamo)
    chain, error = [], raised.value
    while error is not None:
        chain.append(error)
        error = error.__cause__
    refusal = next(e for e in chain if isinstance(e, ValueError))
    assert "torch.onnx.export cannot express " + ONNX_REFUSED[variant] in str(refusal)
