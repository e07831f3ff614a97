"""float64 torch.autograd.gradcheck of every variant on every backend, through the whole module."""

from __future__ import annotations

import pytest
import torch
from test_backends import VARIANTS
from torch.func import functional_call

import lstmkit


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradcheck(backend, variant):
    torch.manual_seed(0)
    kwargs = dict(VARIANTS[variant])
    lstm = lstmkit.LSTM(2, 4, 2, bidirectional=True, dtype=torch.float64, backend=backend, **kwargs)
    names = [name for name, _ in lstm.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in lstm.parameters()]
    out_size = kwargs.get("proj_size", 4)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 2, out_size, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(4, 2, 4, dtype=torch.float64, requires_grad=True)

    def run(x, h0, c0, *params):
        torch.manual_seed(1)  # fixed dropout and zoneout masks in training mode
        out, (h, c) = functional_call(lstm, dict(zip(names, params)), (x, (h0, c0)), {"lengths": [4, 3]})
        return out, h, c

    assert torch.autograd.gradcheck(run, (x, h0, c0, *params))


def test_gradcheck_cell():
    torch.manual_seed(0)
    cell = lstmkit.LSTMCell(3, 2, dtype=torch.float64, peephole=True, layer_norm=True)
    names = [name for name, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]
    inputs = [torch.randn(2, n, dtype=torch.float64, requires_grad=True) for n in (3, 2, 2)]

    def run(x, h0, c0, *params):
        return functional_call(cell, dict(zip(names, params)), (x, (h0, c0)))

    assert torch.autograd.gradcheck(run, (*inputs, *params))
