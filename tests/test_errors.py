"""Misuse gets a ValueError that says what was expected and what came."""

from __future__ import annotations

import pytest
import torch

import lstmkit


@pytest.fixture
def lstm():
    return lstmkit.LSTM(3, 4, 2)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda m: m(torch.randn(5, 2, 7)), r"input_size: expected 3, got 7"),
        (lambda m: m(torch.randn(5)), r"2 \(unbatched\) or 3 \(batched\) dimensions, got 1"),
        (lambda m: m(torch.randn(5, 2, 3, 1)), r"dimensions, got 4"),
        (
            lambda m: m(torch.randn(5, 2, 3, dtype=torch.float64)),
            r"input has dtype torch.float64 .* torch.float32",
        ),
        (lambda m: m(torch.randn(5, 2, 3, device="meta")), r"input is on meta but the parameters are on cpu"),
        (lambda m: m(torch.randn(5, 2, 3), (torch.zeros(2, 2, 4),)), r"hx must be a tuple \(h_0, c_0\)"),
        (lambda m: m(torch.randn(5, 2, 3), torch.zeros(2, 2, 4)), r"hx must be a tuple"),
        (
            lambda m: m(torch.randn(5, 2, 3), (torch.zeros(2, 3, 4), torch.zeros(2, 2, 4))),
            r"expected h_0 of shape \(2, 2, 4\), got \(2, 3, 4\)",
        ),
        (
            lambda m: m(
                torch.randn(5, 2, 3), (torch.zeros(2, 2, 4), torch.zeros(2, 2, 4, dtype=torch.float64))
            ),
            r"c_0 has dtype torch.float64",
        ),
        (
            lambda m: m(torch.randn(5, 3), (torch.zeros(2, 1, 4), torch.zeros(2, 1, 4))),
            r"h_0 of shape \(2, 4\)",
        ),
        (lambda m: m(torch.randn(5, 2, 3), lengths=[5, 6]), r"at most the number of steps T=5, got 6"),
        (lambda m: m(torch.randn(5, 2, 3), lengths=[5, 0]), r"lengths must be positive, got 0"),
        (lambda m: m(torch.randn(5, 2, 3), lengths=[5, 4, 3]), r"expected shape \(2,\), got \(3,\)"),
        (lambda m: m(torch.randn(5, 2, 3), lengths=[5.0, 4.0]), r"lengths must be integers"),
        (lambda m: m(torch.randn(5, 3), lengths=[5]), r"lengths= needs a batched input"),
    ],
)
def test_call_errors(lstm, call, message):
    with pytest.raises(ValueError, match=message):
        call(lstm)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"input_size": 0}, r"input_size must be a positive integer, got 0"),
        ({"num_layers": 0}, r"num_layers must be a positive integer"),
        ({"dropout": 1.5}, r"dropout must be in \[0, 1\], got 1.5"),
        ({"proj_size": 4}, r"proj_size must be in \[0, hidden_size=4\), got 4"),
        ({"backend": "gpu-magic"}, r"unknown backend 'gpu-magic'; available: 'auto', .*'bptt', 'reference'"),
        ({"forget_bias": 1.0, "bias": False}, r"forget_bias needs bias=True"),
    ],
)
def test_constructor_errors(kwargs, message):
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        lstmkit.LSTM(**args)


def test_cell_errors():
    cell = lstmkit.LSTMCell(3, 4)
    with pytest.raises(ValueError, match=r"input_size: expected 3, got 2"):
        cell(torch.randn(2, 2))
    with pytest.raises(ValueError, match=r"expected hx\[0\] of shape \(2, 4\), got \(2, 5\)"):
        cell(torch.randn(2, 3), (torch.zeros(2, 5), torch.zeros(2, 4)))


def test_dropout_on_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="no effect"):
        lstmkit.LSTM(3, 4, dropout=0.5)
