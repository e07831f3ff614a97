"""lengths= on a padded batch: the PackedSequence result, and each sequence as if run alone."""

from __future__ import annotations

import pytest
import torch
from conftest import FLOAT32_ATOL, assert_grads_close, loss_of
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmkit

LENGTHS = torch.tensor([4, 9, 1, 6])


def make(backend, **kwargs):
    torch.manual_seed(0)
    return lstmkit.LSTM(
        3, 5, 2, bidirectional=True, proj_size=kwargs.pop("proj_size", 0), backend=backend, **kwargs
    )


@pytest.mark.parametrize("proj_size", [0, 2])
def test_lengths_equal_packed_sequence(backend, proj_size):
    lstm = make(backend, proj_size=proj_size)
    x = torch.randn(9, 4, 3)
    results = []
    for packed in (True, False):
        xi = x.clone().requires_grad_()
        lstm.zero_grad()
        if packed:
            out, (h, c) = lstm(pack_padded_sequence(xi, LENGTHS, enforce_sorted=False))
            out, _ = pad_packed_sequence(out, total_length=9)
        else:
            out, (h, c) = lstm(xi, lengths=LENGTHS)
        loss_of(out, h, c).backward()
        results.append((out, h, c, xi.grad, *[p.grad.clone() for p in lstm.parameters()]))
    for a, e in zip(*results):
        assert_grads_close(e, a, rel=1e-5)


def test_each_sequence_as_if_alone(backend):
    """Padded outputs are zero, h_n/c_n come from each sequence's last valid step, and the reverse
    direction starts at each sequence's own last step: all as running the sequence unpadded."""
    lstm = make(backend, peephole=True, layer_norm=True)
    x = torch.randn(9, 4, 3)
    out, (h_n, c_n) = lstm(x, lengths=LENGTHS)
    for b, length in enumerate(LENGTHS.tolist()):
        alone, (h_alone, c_alone) = lstm(x[:length, b])
        torch.testing.assert_close(out[:length, b], alone, rtol=0, atol=FLOAT32_ATOL)
        assert torch.all(out[length:, b] == 0)
        torch.testing.assert_close(h_n[:, b], h_alone, rtol=0, atol=FLOAT32_ATOL)
        torch.testing.assert_close(c_n[:, b], c_alone, rtol=0, atol=FLOAT32_ATOL)


def test_lengths_with_batch_first_and_list(backend):
    lstm = make(backend)
    lstm.batch_first = True
    x = torch.randn(4, 9, 3)
    out_list, _ = lstm(x, lengths=LENGTHS.tolist())
    out_tensor, _ = lstm(x, lengths=LENGTHS)
    alone, _ = lstm(x[1:2, :9])
    assert torch.equal(out_list, out_tensor)
    torch.testing.assert_close(out_tensor[1:2], alone, rtol=0, atol=FLOAT32_ATOL)


def test_zoneout_evaluation_with_lengths_freezes_the_state(backend):
    """Keep factors (zoneout's expectation) and padding combine: padded steps still change nothing."""
    lstm = make(backend, zoneout=0.3).eval()
    x = torch.randn(9, 4, 3)
    _, (h_n, c_n) = lstm(x, lengths=LENGTHS)
    _, (h_alone, c_alone) = lstm(x[:6, 3])
    torch.testing.assert_close(h_n[:, 3], h_alone, rtol=0, atol=FLOAT32_ATOL)
    torch.testing.assert_close(c_n[:, 3], c_alone, rtol=0, atol=FLOAT32_ATOL)
