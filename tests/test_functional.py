"""The hand-derived step backward against autograd through the step, for every variant."""

from __future__ import annotations

import pytest
import torch

from lstmkit import functional as F
from lstmkit.parameters import Variant, parameter_shapes

B, I, H, P = 3, 4, 5, 2


def test_layer_norm_matches_torch():
    x = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
    normed, rstd = F.layer_norm(x)
    torch.testing.assert_close(normed, torch.nn.functional.layer_norm(x, (8,), eps=F.LAYER_NORM_EPS))
    d = torch.randn_like(normed)
    (expected,) = torch.autograd.grad(normed, x, d)
    torch.testing.assert_close(F.layer_norm_backward(d, normed.detach(), rstd.detach()), expected)


def random_weights(variant: Variant, proj: int) -> F.GateWeights:
    shapes = parameter_shapes(I, H, proj, True, variant)
    return F.GateWeights(
        **{k: torch.randn(s, dtype=torch.float64, requires_grad=True) for k, s in shapes.items()}
    )


@pytest.mark.parametrize("proj", [0, P])
@pytest.mark.parametrize(
    "variant",
    [Variant(), Variant(peephole=True), Variant(layer_norm=True), Variant(coupled_gates=True, peephole=True)],
    ids=["vanilla", "peephole", "layer_norm", "coupled_peephole"],
)
@pytest.mark.parametrize("masks", [False, True], ids=["plain", "masks"])
def test_step_backward_equals_autograd(variant, proj, masks):
    torch.manual_seed(0)
    w = random_weights(variant, proj)
    out = proj or H
    x = torch.randn(B, I, dtype=torch.float64)
    h0 = torch.randn(B, out, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    mask = torch.bernoulli(torch.full((B, out), 0.7, dtype=torch.float64)) if masks else None
    keep_c = torch.rand(B, H, dtype=torch.float64) if masks else None
    keep_h = torch.rand(B, out, dtype=torch.float64) if masks else None
    x_gates, _, _ = F.input_projection(x, w)
    x_gates = x_gates.detach().requires_grad_()
    h, c, cache = F.lstm_step(x_gates, h0, c0, w, mask, keep_c, keep_h)
    dh, dc = torch.randn_like(h), torch.randn_like(c)
    dh0, dc0, d = F.lstm_step_backward(dh, dc, cache, w, mask, keep_c, keep_h)
    expected = torch.autograd.grad((h, c), (h0, c0, x_gates), (dh, dc), retain_graph=True)
    torch.testing.assert_close(dh0, expected[0])
    torch.testing.assert_close(dc0, expected[1])
    torch.testing.assert_close(d.da, expected[2])  # dL/da: the input projection's gradient
