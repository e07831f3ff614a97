"""lstmkit.LSTM and LSTMCell against torch.nn.LSTM and LSTMCell: parameters, outputs and every gradient."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import assert_grads_close, loss_of, torch_twin
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmkit

GRID = list(itertools.product([1, 3], [False, True], [False, True], [0, 3]))


def run_both(ours, theirs, x, hx=None):
    """Forward and backward through both modules; returns (ours, theirs) lists of results."""
    results = []
    for module in (ours, theirs):
        xi = x.detach().clone().requires_grad_()
        hxi = None if hx is None else tuple(t.detach().clone().requires_grad_() for t in hx)
        module.zero_grad()
        out, (h, c) = module(xi, hxi)
        loss_of(out, h, c).backward()
        grads = (
            [xi.grad] + ([] if hxi is None else [t.grad for t in hxi]) + [p.grad for p in module.parameters()]
        )
        results.append(((out, h, c), grads))
    return results


@pytest.mark.parametrize("num_layers,bidirectional,batch_first,proj_size", GRID)
def test_matches_torch_forward_and_gradients(backend, num_layers, bidirectional, batch_first, proj_size):
    torch.manual_seed(0)
    ours = lstmkit.LSTM(
        5,
        6,
        num_layers,
        batch_first=batch_first,
        bidirectional=bidirectional,
        proj_size=proj_size,
        backend=backend,
    )
    theirs = torch_twin(ours)
    x = torch.randn((4, 7, 5) if batch_first else (7, 4, 5))
    stack, h_size = num_layers * (2 if bidirectional else 1), proj_size or 6
    hx = (torch.randn(stack, 4, h_size), torch.randn(stack, 4, 6))
    (ours_out, ours_grads), (torch_out, torch_grads) = run_both(ours, theirs, x, hx)
    for a, e in zip(ours_out, torch_out):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-5)
    assert len(ours_grads) == len(torch_grads) == 3 + len(list(theirs.parameters()))
    for a, e in zip(ours_grads, torch_grads):
        assert_grads_close(e, a)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_unbatched_input_matches_torch(backend, bidirectional):
    torch.manual_seed(1)
    ours = lstmkit.LSTM(3, 4, 2, bidirectional=bidirectional, proj_size=2, backend=backend)
    theirs = torch_twin(ours)
    stack = 2 * (2 if bidirectional else 1)
    x, hx = torch.randn(6, 3), (torch.randn(stack, 2), torch.randn(stack, 4))
    (ours_out, ours_grads), (torch_out, torch_grads) = run_both(ours, theirs, x, hx)
    for a, e in zip(ours_out, torch_out):
        assert a.shape == e.shape
        torch.testing.assert_close(a, e, rtol=0, atol=1e-5)
    for a, e in zip(ours_grads, torch_grads):
        assert_grads_close(e, a)


@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_sequence_matches_torch(backend, enforce_sorted, bidirectional):
    torch.manual_seed(2)
    lengths = torch.tensor([7, 5, 5, 2]) if enforce_sorted else torch.tensor([3, 7, 1, 5])
    ours = lstmkit.LSTM(3, 5, 2, bidirectional=bidirectional, backend=backend)
    theirs = torch_twin(ours)
    x = torch.randn(7, 4, 3)
    stack = 2 * (2 if bidirectional else 1)
    hx = (torch.randn(stack, 4, 5), torch.randn(stack, 4, 5))
    results = []
    for module in (ours, theirs):
        xi = x.clone().requires_grad_()
        packed = pack_padded_sequence(xi, lengths, enforce_sorted=enforce_sorted)
        out, (h, c) = module(packed, hx)
        assert torch.equal(out.batch_sizes, packed.batch_sizes)
        padded, _ = pad_packed_sequence(out)
        loss_of(padded, h, c).backward()
        results.append((out.data, padded, h, c, xi.grad, *[p.grad for p in module.parameters()]))
    if not enforce_sorted:
        assert torch.equal(out.sorted_indices, packed.sorted_indices)
    for a, e in zip(*results):
        assert_grads_close(e, a)


def test_state_dict_loads_both_ways():
    torch.manual_seed(3)
    theirs = torch.nn.LSTM(4, 6, 2, bidirectional=True, proj_size=3)
    ours = lstmkit.LSTM(4, 6, 2, bidirectional=True, proj_size=3)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(5, 2, 4)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0], rtol=0, atol=1e-5)
    back = torch.nn.LSTM(4, 6, 2, bidirectional=True, proj_size=3)
    back.load_state_dict(ours.state_dict(), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(back.parameters(), theirs.parameters()))


@pytest.mark.parametrize("proj_size", [0, 2])
def test_initialisation_is_torchs(proj_size):
    """Same seed, same parameters: names, order, shapes and the U(-1/sqrt(H), 1/sqrt(H)) draws."""
    torch.manual_seed(4)
    theirs = torch.nn.LSTM(3, 5, 2, bidirectional=True, proj_size=proj_size)
    torch.manual_seed(4)
    ours = lstmkit.LSTM(3, 5, 2, bidirectional=True, proj_size=proj_size)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)
    assert [[p.shape for p in ws] for ws in ours.all_weights] == [
        [p.shape for p in ws] for ws in theirs.all_weights
    ]


@pytest.mark.parametrize("batched", [True, False])
def test_cell_matches_torch(batched):
    torch.manual_seed(5)
    theirs = torch.nn.LSTMCell(3, 4)
    torch.manual_seed(5)
    ours = lstmkit.LSTMCell(3, 4)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    shape = (2,) if batched else ()
    x, h0, c0 = torch.randn(*shape, 3), torch.randn(*shape, 4), torch.randn(*shape, 4)
    results = []
    for module in (ours, theirs):
        inputs = [t.clone().requires_grad_() for t in (x, h0, c0)]
        h, c = module(inputs[0], (inputs[1], inputs[2]))
        (h * torch.arange(4.0)).sum().backward(retain_graph=True)
        (c**2).sum().backward()
        results.append((h, c, *[t.grad for t in inputs], *[p.grad for p in module.parameters()]))
    for a, e in zip(*results):
        assert a.shape == e.shape
        assert_grads_close(e, a)


def test_cell_steps_equal_the_layer(backend):
    """Stepping LSTMCell through a sequence gives LSTM's output: one set of gate math serves both."""
    torch.manual_seed(6)
    layer = lstmkit.LSTM(3, 4, backend=backend, peephole=True, layer_norm=True)
    cell = lstmkit.LSTMCell(3, 4, peephole=True, layer_norm=True)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x = torch.randn(5, 2, 3)
    out, (h_n, c_n) = layer(x)
    h = c = torch.zeros(2, 4)
    for t in range(5):
        h, c = cell(x[t], (h, c))
        torch.testing.assert_close(h, out[t])
    torch.testing.assert_close(c, c_n[0])
