"""NaN and infinity come out where torch.nn.LSTM gives them, on every backend, forward and backward: a NaN
turned into a plausible number would reach the user as a prediction, and hide a diverged training run."""

from __future__ import annotations

import pytest
import torch
from conftest import torch_twin

import lstmkit

SPECIAL = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "1e30": 1e30}
EVERYTHING = {"peephole": True, "coupled_gates": True, "layer_norm": True, "proj_size": 2}


def run(lstm, x, hx):
    """Outputs and gradients (input, state, parameters) of a sum over every output."""
    x = x.clone().requires_grad_()
    hx = tuple(t.clone().requires_grad_() for t in hx)
    lstm.zero_grad()
    out, (h, c) = lstm(x, hx)
    (out.sum() + h.sum() + c.sum()).backward()
    return [out, h, c, x.grad, *(t.grad for t in hx), *(p.grad for p in lstm.parameters())]


def assert_same_special_values(actual, expected):
    """NaN exactly where expected has NaN, the same infinities, and the finite values close."""
    for a, e in zip(actual, expected, strict=True):
        assert torch.equal(a.isnan(), e.isnan()), "NaN in different places"
        assert torch.equal(a.isposinf(), e.isposinf()) and torch.equal(a.isneginf(), e.isneginf())
        finite = e.isfinite()
        torch.testing.assert_close(a[finite], e[finite], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("where", ["input", "h0", "c0", "one_step"])
@pytest.mark.parametrize("value", SPECIAL)
def test_non_finite_values_propagate_as_in_torch(backend, value, where):
    torch.manual_seed(0)
    ours = lstmkit.LSTM(3, 4, num_layers=2, backend=backend)
    theirs = torch_twin(ours)
    x, h0, c0 = torch.randn(5, 2, 3), torch.randn(2, 2, 4), torch.randn(2, 2, 4)
    special = SPECIAL[value]
    if where == "input":
        x.fill_(special)
    elif where == "one_step":
        x[2, 1, 0] = special  # one element of one sequence, mid-sequence
    else:
        {"h0": h0, "c0": c0}[where][0, 0, 1] = special
    expected = run(theirs, x, (h0, c0))
    if where == "input" and value == "nan":
        assert expected[0].isnan().all()  # what torch does, which ours must match
    assert_same_special_values(run(ours, x, (h0, c0)), expected)


@pytest.mark.parametrize("value", SPECIAL)
def test_non_finite_values_in_variants_match_the_reference(backend, value):
    """The variants torch lacks, against the reference backend (torch's own elementwise functions)."""
    torch.manual_seed(0)
    ours = lstmkit.LSTM(3, 4, num_layers=2, backend=backend, **EVERYTHING)
    reference = lstmkit.LSTM(3, 4, num_layers=2, backend="reference", **EVERYTHING)
    reference.load_state_dict(ours.state_dict())
    x, h0, c0 = torch.randn(5, 2, 3), torch.randn(2, 2, 2), torch.randn(2, 2, 4)
    x[1:, 0] = SPECIAL[value]
    assert_same_special_values(run(ours, x, (h0, c0)), run(reference, x, (h0, c0)))


def test_streaming_step_propagates_nan(backend):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 4, num_layers=2, backend=backend).eval()
    state = lstm.initial_state(2)
    with torch.no_grad():
        y, state = lstm.step(torch.full((2, 3), float("nan")), state)
    assert y.isnan().all() and state[0].isnan().all() and state[1].isnan().all()
