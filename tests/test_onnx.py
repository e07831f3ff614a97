"""torch.onnx.export of lstmkit.LSTM with both exporters, run in onnxruntime on inputs other than the example:
one ONNX LSTM node per layer where ONNX's operator expresses the model, one clear error where it cannot."""

from __future__ import annotations

import pytest
import torch
from conftest import FLOAT32_ATOL
from test_dropin import INPUT, VARIANTS, inputs, model

import lstmkit

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
import onnx  # noqa: E402  (after the skips: a test dependency)

ONNX_VARIANTS = ["vanilla", "bidirectional", "peephole", "coupled_gates", "everything"]
ONNX_REFUSED = {"layer_norm": "layer_norm=True", "proj_size": "proj_size=3", "zoneout": "zoneout="}
assert set(ONNX_VARIANTS) | set(ONNX_REFUSED) == set(VARIANTS)
HIDDEN = 6


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
