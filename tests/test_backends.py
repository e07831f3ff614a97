"""Every backend against the reference: forward, trace and gradients, for every variant."""

from __future__ import annotations

import pytest
import torch
from conftest import BACKENDS, assert_grads_close, loss_of, requires_cuda

import lstmkit

VARIANTS = {
    "vanilla": {},
    "peephole": {"peephole": True},
    "layer_norm": {"layer_norm": True},
    "coupled_gates": {"coupled_gates": True},
    "forget_bias": {"forget_bias": 1.0},
    "recurrent_dropout": {"recurrent_dropout": 0.4},
    "zoneout": {"zoneout": (0.2, 0.3)},
    "everything": {
        "peephole": True,
        "layer_norm": True,
        "coupled_gates": True,
        "forget_bias": 1.0,
        "recurrent_dropout": 0.2,
        "zoneout": 0.1,
        "proj_size": 3,
    },
}


def forward_backward(lstm, x, lengths, seed=7):
    xi = x.clone().requires_grad_()
    lstm.zero_grad()
    torch.manual_seed(seed)  # the same dropout and zoneout masks for every backend
    out, (h, c), trace = lstm(xi, lengths=lengths, return_trace=True)
    loss_of(out, h, c).backward()
    return [out, h, c, *trace.as_dict().values(), xi.grad, *[p.grad.clone() for p in lstm.parameters()]]


def test_registry_lists_reference_and_bptt_and_auto_picks_the_best():
    assert {"reference", "bptt"} <= set(lstmkit.backends())
    assert lstmkit.backends()[0] != "reference"
    assert lstmkit.backend.resolve("auto").name == lstmkit.backends()[0]
    assert lstmkit.LSTM(2, 3).backend == "auto"


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", [b for b in BACKENDS if b != "reference"])
def test_backend_equals_reference(name, variant, training):
    kwargs = dict(VARIANTS[variant])
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(4, 6, 2, bidirectional=True, dtype=torch.float64, **kwargs).train(training)
    x = torch.randn(8, 3, 4, dtype=torch.float64)
    lengths = torch.tensor([8, 5, 2])
    lstm.backend = "reference"
    expected = forward_backward(lstm, x, lengths)
    lstm.backend = name
    actual = forward_backward(lstm, x, lengths)
    for a, e in zip(actual, expected):
        assert_grads_close(e, a, rel=1e-10)


def test_backend_in_inference_mode_matches_training_forward(backend):
    torch.manual_seed(1)
    lstm = lstmkit.LSTM(3, 4, 2, backend=backend, peephole=True)
    x = torch.randn(6, 2, 3)
    with torch.no_grad():
        out_nograd, _ = lstm(x)
    out_grad, _ = lstm(x.requires_grad_())
    assert out_grad.requires_grad and not out_nograd.requires_grad
    torch.testing.assert_close(out_nograd, out_grad, rtol=0, atol=0)


@requires_cuda
@pytest.mark.parametrize("variant", VARIANTS)
def test_backend_on_cuda_matches_cpu(backend, variant):
    kwargs = dict(VARIANTS[variant])
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(4, 6, 2, bidirectional=True, dtype=torch.float64, backend=backend, **kwargs).eval()
    x = torch.randn(8, 3, 4, dtype=torch.float64)
    lengths = torch.tensor([8, 5, 2])
    expected = forward_backward(lstm, x, lengths)
    actual = forward_backward(lstm.cuda(), x.cuda(), lengths)
    for a, e in zip(actual, expected):
        assert a.is_cuda
        assert_grads_close(e, a.cpu(), rel=1e-9)
