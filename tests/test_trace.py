"""Gate traces hold the values the forward used: recomputing each gate from the weights, x_t and the
traced h_{t-1} (and c_{t-1}) gives the traced value."""

from __future__ import annotations

import pytest
import torch
from conftest import FLOAT32_ATOL

import lstmkit

T, B, I, H = 6, 3, 4, 5
LENGTHS = torch.tensor([6, 4, 2])


def recompute(lstm, suffix, x, h_prev, c_prev):
    """i, f, g, o at every step from the parameters, the layer input x (T, B, In) and the traced
    previous states, each (T, B, ·). Plain torch, gates split by name."""
    p = {name.removesuffix(suffix): v for name, v in lstm.named_parameters() if name.endswith(suffix)}
    a = x @ p["weight_ih"].T + p["bias_ih"] + p["bias_hh"] + h_prev @ p["weight_hh"].T
    i, f, g, o = a.split(H, -1)
    if lstm.variant.peephole:
        i, f = i + p["weight_ci"] * c_prev, f + p["weight_cf"] * c_prev
    return torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), o  # o's peephole needs c_t: see below


def previous(states, h0, reverse):
    """States (T, B, n) shifted one step along the direction of travel, h0 first."""
    if reverse:
        return torch.cat([states[1:], h0[None]])
    return torch.cat([h0[None], states[:-1]])


@pytest.mark.parametrize("peephole", [False, True])
def test_trace_recomputes_from_the_equations(backend, peephole):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(I, H, 2, bidirectional=True, backend=backend, peephole=peephole)
    x = torch.randn(T, B, I)
    h0, c0 = torch.randn(4, B, H), torch.randn(4, B, H)
    out, (h_n, c_n), tr = lstm(x, (h0, c0), return_trace=True)
    for field in tr.as_dict().values():
        assert field.shape == (4, T, B, H)
    assert not tr.hidden.requires_grad
    layer_input = x
    for layer in range(2):
        for direction in range(2):
            k, suffix = 2 * layer + direction, f"_l{layer}" + ("_reverse" if direction else "")
            h_prev = previous(tr.hidden[k], h0[k], direction)
            c_prev = previous(tr.cell[k], c0[k], direction)
            with torch.no_grad():
                i, f, g, o_pre = recompute(lstm, suffix, layer_input, h_prev, c_prev)
                c = f * c_prev + i * g
                o = torch.sigmoid(o_pre + (getattr(lstm, "weight_co" + suffix) * c if peephole else 0))
            for name, value in zip(
                ("input_gate", "forget_gate", "candidate", "output_gate", "cell"), (i, f, g, o, c)
            ):
                torch.testing.assert_close(getattr(tr, name)[k], value, rtol=0, atol=FLOAT32_ATOL, msg=name)
            torch.testing.assert_close(tr.hidden[k], o * torch.tanh(c), rtol=0, atol=FLOAT32_ATOL)
        layer_input = torch.cat([tr.hidden[2 * layer], tr.hidden[2 * layer + 1]], dim=-1)
    torch.testing.assert_close(layer_input, out)  # the last layer's traced hidden is the output
    torch.testing.assert_close(tr.hidden[[0, 2], -1], h_n[[0, 2]])  # forward ends at T, reverse at 1
    torch.testing.assert_close(tr.cell[[1, 3], 0], c_n[[1, 3]])


def test_coupled_trace_reports_the_input_gate_used(backend):
    lstm = lstmkit.LSTM(I, H, backend=backend, coupled_gates=True)
    _, _, tr = lstm(torch.randn(T, B, I), return_trace=True)
    torch.testing.assert_close(tr.input_gate, 1 - tr.forget_gate)


def test_trace_layouts(backend):
    torch.manual_seed(1)
    lstm = lstmkit.LSTM(I, H, 2, batch_first=True, backend=backend, proj_size=2)
    x = torch.randn(B, T, I)
    out, _, tr = lstm(x, lengths=LENGTHS, return_trace=True)
    assert tr.forget_gate.shape == (2, B, T, H) and tr.hidden.shape == (2, B, T, 2)
    torch.testing.assert_close(tr.hidden[-1], out)
    for b, length in enumerate(LENGTHS.tolist()):  # steps past each sequence's end are zero
        assert torch.all(tr.forget_gate[:, b, length:] == 0) and torch.all(tr.forget_gate[:, b, :length] > 0)
    _, _, unbatched = lstm(x[0], return_trace=True)
    assert unbatched.cell.shape == (2, T, H)
    torch.testing.assert_close(unbatched.cell, tr.cell[:, 0])


def test_without_return_trace_the_call_is_torchs():
    result = lstmkit.LSTM(I, H)(torch.randn(T, B, I))
    assert len(result) == 2 and len(result[1]) == 2
