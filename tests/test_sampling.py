"""The fast dropout and zoneout masks: the right probabilities, independent elements, seeded by torch."""

from __future__ import annotations

import pytest
import torch

from lstmkit import sampling


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.9])
def test_bernoulli_mask_has_the_probability_and_independent_elements(p):
    torch.manual_seed(0)
    n = 400_000
    mask = sampling.bernoulli_mask((n,), p, torch.empty(0))
    assert mask.dtype == torch.float32 and set(mask.unique().tolist()) <= {0.0, 1.0}
    sigma = (p * (1 - p) / n) ** 0.5
    assert abs(mask.mean().item() - p) < 5 * sigma
    # the four elements of one 64-bit draw, and neighbouring draws, are uncorrelated
    for lag in (1, 2, 3, 4, 5):
        a, b = mask[:-lag] - p, mask[lag:] - p
        correlation = (a * b).mean().item() / (p * (1 - p))
        assert abs(correlation) < 5 / n**0.5, lag


def test_masks_follow_torch_seed_and_shape():
    like = torch.empty(0, dtype=torch.float64)
    torch.manual_seed(3)
    first = sampling.bernoulli_mask((7, 5, 3), 0.3, like)
    torch.manual_seed(3)
    again = sampling.bernoulli_mask((7, 5, 3), 0.3, like)
    assert first.shape == (7, 5, 3) and first.dtype == torch.float64
    assert torch.equal(first, again)
    assert not torch.equal(first, sampling.bernoulli_mask((7, 5, 3), 0.3, like))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.75])
def test_dropout_keeps_the_expectation_and_zeroes_the_rest(p):
    torch.manual_seed(1)
    x = torch.rand(300_000) + 0.5
    y = sampling.dropout(x, p)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / sampling.rounded(1 - p))
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    assert abs(y.mean().item() / x.mean().item() - 1) < 0.01


def test_dropout_gradient_is_the_mask_and_eval_is_identity():
    x = torch.randn(50, 40, requires_grad=True)
    torch.manual_seed(2)
    y = sampling.dropout(x, 0.3)
    y.backward(torch.ones_like(y))
    torch.manual_seed(2)
    mask = sampling.dropout_mask((50, 40), 0.3, x)
    torch.testing.assert_close(x.grad, mask)
    torch.testing.assert_close(y, x * mask)
    assert sampling.dropout(x, 0.3, training=False) is x
    layer = sampling.Dropout(0.3).eval()
    assert layer(x) is x
    assert torch.equal(sampling.dropout(x, 1.0), torch.zeros_like(x))
