"""Each variant against its equations written out directly, one weight matrix per gate, on a tiny case."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import FLOAT32_ATOL

import lstmkit
from lstmkit import sampling

T, B, I, H = 4, 2, 3, 3


def ln(v, gain, shift=0.0):
    """Layer norm as Ba et al. write it: gain * (v - mean) / std + shift."""
    return (
        gain * (v - v.mean(-1, keepdim=True)) / torch.sqrt(v.var(-1, unbiased=False, keepdim=True) + 1e-5)
        + shift
    )


def oracle(lstm, x, recurrent_mask=None, keep_c=None, keep_h=None):
    """One layer, one direction, from the papers' equations. Returns (outputs (T, B, H), h_T, c_T)."""
    p = {k.removesuffix("_l0"): v.detach() for k, v in lstm.state_dict().items()}
    v = lstm.variant
    gates = "fgo" if v.coupled_gates else "ifgo"
    h = c = torch.zeros(B, H)
    outputs = []
    for t in range(T):
        h_in = h if recurrent_mask is None else h * recurrent_mask
        from_x, from_h = x[t] @ p["weight_ih"].T, h_in @ p["weight_hh"].T
        if v.layer_norm:
            from_x, from_h = ln(from_x, p["ln_weight_ih"]), ln(from_h, p["ln_weight_hh"])
        a = dict(zip(gates, (from_x + from_h + p["bias_ih"] + p["bias_hh"]).split(H, -1)))
        peep = (lambda g, state: p[f"weight_c{g}"] * state) if v.peephole else (lambda g, state: 0.0)
        f = torch.sigmoid(a["f"] + peep("f", c))
        i = 1 - f if v.coupled_gates else torch.sigmoid(a["i"] + peep("i", c))
        g = torch.tanh(a["g"])
        c_new = f * c + i * g
        o = torch.sigmoid(a["o"] + peep("o", c_new))
        squashed = torch.tanh(ln(c_new, p["ln_weight_c"], p["ln_bias_c"]) if v.layer_norm else c_new)
        h_new = o * squashed
        c = c_new if keep_c is None else keep_c[t] * c + (1 - keep_c[t]) * c_new
        h = h_new if keep_h is None else keep_h[t] * h + (1 - keep_h[t]) * h_new
        outputs.append(h)
    return torch.stack(outputs), h, c


def check(lstm, expected, x, seed=0):
    torch.manual_seed(seed)
    out, (h_n, c_n) = lstm(x)
    for a, e in zip((out, h_n[0], c_n[0]), expected):
        torch.testing.assert_close(a, e, rtol=0, atol=FLOAT32_ATOL)


def test_vanilla_by_hand_on_one_unit(backend):
    """One input, one unit, two steps, every number worked out with math.exp and math.tanh."""
    lstm = lstmkit.LSTM(1, 1, backend=backend)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor([[0.5], [-0.25], [1.0], [0.75]]))  # rows i, f, g, o
        lstm.weight_hh_l0.copy_(torch.tensor([[0.1], [0.2], [-0.3], [0.4]]))
        lstm.bias_ih_l0.copy_(torch.tensor([0.0, 1.0, 0.0, 0.0]))
        lstm.bias_hh_l0.copy_(torch.tensor([0.1, 0.0, -0.1, 0.0]))
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    h = c = 0.0
    expected = []
    for x in (1.0, -2.0):
        i = sig(0.5 * x + 0.1 * h + 0.1)
        f = sig(-0.25 * x + 0.2 * h + 1.0)
        g = math.tanh(1.0 * x - 0.3 * h - 0.1)
        o = sig(0.75 * x + 0.4 * h)
        c = f * c + i * g
        h = o * math.tanh(c)
        expected.append(h)
    out, (h_n, c_n) = lstm(torch.tensor([[1.0], [-2.0]]))
    assert out.flatten().tolist() == pytest.approx(expected, abs=1e-6)
    assert (h_n.item(), c_n.item()) == pytest.approx((h, c), abs=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"peephole": True},
        {"layer_norm": True},
        {"coupled_gates": True},
        {"coupled_gates": True, "peephole": True},
    ],
    ids=["vanilla", "peephole", "layer_norm", "coupled_gates", "coupled_peephole"],
)
def test_deterministic_variant_matches_its_equations(backend, kwargs):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(I, H, backend=backend, **kwargs)
    with torch.no_grad():  # move layer-norm gains and shifts off 1 and 0 so that they matter
        for name, p in lstm.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(T, B, I)
    check(lstm, oracle(lstm, x), x)


def test_coupled_gates_have_three_gates_of_weights():
    lstm = lstmkit.LSTM(I, H, coupled_gates=True, peephole=True)
    assert lstm.weight_ih_l0.shape == (3 * H, I) and lstm.weight_hh_l0.shape == (3 * H, H)
    assert not hasattr(lstm, "weight_ci_l0")  # i = 1 - f needs no peephole of its own


@pytest.mark.parametrize("coupled", [False, True])
def test_forget_bias_is_added_to_the_forget_rows_only(coupled):
    torch.manual_seed(3)
    plain = lstmkit.LSTM(I, H, coupled_gates=coupled)
    torch.manual_seed(3)
    biased = lstmkit.LSTM(I, H, coupled_gates=coupled, forget_bias=1.0)
    shift = biased.bias_ih_l0 - plain.bias_ih_l0
    rows = slice(0, H) if coupled else slice(H, 2 * H)
    torch.testing.assert_close(shift[rows], torch.ones(H))
    shift[rows] = 0
    assert torch.all(shift == 0) and torch.equal(biased.bias_hh_l0, plain.bias_hh_l0)


def test_recurrent_dropout_one_mask_per_sequence_in_training_only(backend):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(I, H, backend=backend, recurrent_dropout=0.5)
    x = torch.randn(T, B, I)
    torch.manual_seed(11)  # the module draws its (B, H) mask first thing, from the global generator
    mask = sampling.dropout_mask((B, H), 0.5, x)
    check(lstm.train(), oracle(lstm, x, recurrent_mask=mask), x, seed=11)
    check(lstm.eval(), oracle(lstm, x), x)


def test_zoneout_bernoulli_in_training_expectation_at_evaluation(backend):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(I, H, backend=backend, zoneout=(0.3, 0.6))
    x = torch.randn(T, B, I)
    torch.manual_seed(12)  # the module draws k^c (T, B, H), then k^h (T, B, H)
    keep_c = sampling.bernoulli_mask((T, B, H), 0.3, x)
    keep_h = sampling.bernoulli_mask((T, B, H), 0.6, x)
    check(lstm.train(), oracle(lstm, x, keep_c=keep_c, keep_h=keep_h), x, seed=12)
    full = lambda p: torch.full((T, B, H), p)  # noqa: E731
    check(lstm.eval(), oracle(lstm, x, keep_c=full(0.3), keep_h=full(0.6)), x)


def test_weight_drop_masks_w_hh_once_per_call_and_its_gradient_through_the_mask(backend):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(I, H, backend=backend, weight_drop=0.5)
    x = torch.randn(T, B, I)
    torch.manual_seed(13)  # the module draws one (4H, H) mask for W_hh, shared by every step
    mask = sampling.dropout_mask((4 * H, H), 0.5, x)
    masked = lstmkit.LSTM(I, H, backend=backend)
    masked.load_state_dict(lstm.state_dict())
    with torch.no_grad():
        masked.weight_hh_l0.mul_(mask)
    check(lstm.train(), oracle(masked, x), x, seed=13)
    torch.manual_seed(13)
    lstm(x)[0].square().sum().backward()
    masked(x)[0].square().sum().backward()
    # W_hh' = W_hh * M: dL/dW_hh = dL/dW_hh' * M, zero where a weight was dropped
    torch.testing.assert_close(lstm.weight_hh_l0.grad, masked.weight_hh_l0.grad * mask)
    assert bool((lstm.weight_hh_l0.grad[mask == 0] == 0).all())
    first, second = lstm(x)[0], lstm(x)[0]
    assert not torch.equal(first, second)  # a new mask every call
    check(lstm.eval(), oracle(lstm, x), x)  # no drop at evaluation


@pytest.mark.parametrize(
    "kwargs", [{"recurrent_dropout": 1.0}, {"weight_drop": 1.0}, {"zoneout": -0.1}, {"zoneout": (0.1, 1.5)}]
)
def test_variant_probabilities_out_of_range(kwargs):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        lstmkit.LSTM(I, H, **kwargs)
