"""Streaming: ``initial_state`` and ``step`` through all layers equal the full-sequence forward."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import BACKENDS

import lstmkit
from lstmkit.backend import StepPath, registry, resolve

VARIANTS = {
    "vanilla": {},
    "projection": {"proj_size": 3},
    "peephole+zoneout": {"peephole": True, "zoneout": (0.3, 0.2)},
    "coupled_gates": {"coupled_gates": True, "forget_bias": 1.0},
    "layer_norm": {"layer_norm": True},
}


def run_steps(lstm, x, state):
    ys = []
    for x_t in x.unbind(1 if lstm.batch_first and x.dim() == 3 else 0):
        y, state = lstm.step(x_t, state)
        ys.append(y)
    return torch.stack(ys, dim=1 if lstm.batch_first and x.dim() == 3 else 0), state


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_steps_in_eval_equal_the_full_sequence(backend, variant):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(4, 6, 3, dtype=torch.float64, backend=backend, **VARIANTS[variant]).eval()
    x = torch.randn(7, 2, 4, dtype=torch.float64)
    h0 = torch.randn(3, 2, lstm.output_size, dtype=torch.float64)
    c0 = torch.randn(3, 2, 6, dtype=torch.float64)
    with torch.no_grad():
        expected, (h_n, c_n) = lstm(x, (h0, c0))
        actual, (h, c) = run_steps(lstm, x, (h0, c0))
    for a, e in ((actual, expected), (h, h_n), (c, c_n)):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif("cpu" not in lstmkit.backends(), reason="the CPU kernel does not build here")
def test_the_one_step_kernel_runs_in_eval_and_sees_changed_weights():
    torch.manual_seed(1)
    lstm = lstmkit.LSTM(5, 8, 2, backend="cpu").eval()
    x = torch.randn(5)
    with torch.no_grad():
        state = lstm.initial_state()
        assert lstm._one_step(x, state) is not None
        y, state = lstm.step(x, state)
        torch.testing.assert_close(y, lstm(x[None])[0][0], rtol=1e-6, atol=1e-6)
        lstm.weight_hh_l1.add_(0.5)  # in place, as an optimizer does: the prepared weights are rebuilt
        y2, _ = lstm.step(x, state)
        expected, _ = lstm(torch.stack([x, x]))
        torch.testing.assert_close(y2, expected[1], rtol=1e-6, atol=1e-6)
        lstm.double()  # new parameter data in the same Parameter objects
        y64, _ = lstm.step(x.double(), lstm.initial_state())
        torch.testing.assert_close(y64, lstm(x.double()[None])[0][0], rtol=1e-12, atol=1e-12)
    state = lstm.initial_state()
    assert lstm._one_step(x, state) is None  # the parameters want gradients
    with torch.no_grad():  # nothing random in training without dropout or zoneout: the kernel too
        assert lstm.train()._one_step(x, state) is not None
        for random in (dict(dropout=0.2), dict(recurrent_dropout=0.2), dict(zoneout=0.1)):
            assert lstmkit.LSTM(5, 8, 2, backend="cpu", **random).train()._one_step(x, state) is None


@pytest.mark.parametrize("prepares", [True, False], ids=["prepared", "declined"])
def test_step_takes_the_one_step_path_its_backend_declares(monkeypatch, prepares):
    """LSTM.step asks the registry for its backend's step path, whichever backend that is: here the
    reference backend's run over one step, layer by layer, counted. It serves eval() under no_grad when
    its prepare gives weights, never training; declined (prepare gives None), step runs forward."""
    calls = []

    def run(x, h, c, layers, zoneouts):
        calls.append(zoneouts)
        hs, cs = [], []
        for k, w in enumerate(layers):
            result = resolve("reference").run(x[None], h[k], c[k], w)
            x = result.output[0]
            hs.append(result.h_n)
            cs.append(result.c_n)
        return torch.stack(hs), torch.stack(cs)

    path = StepPath(lambda layers: layers if prepares else None, lambda x: True, run)
    stepping = dataclasses.replace(resolve("reference"), name="stepping", step=path)
    monkeypatch.setitem(registry._REGISTRY, "stepping", stepping)
    torch.manual_seed(3)
    lstm = lstmkit.LSTM(3, 5, 2, dtype=torch.float64, backend="stepping").eval()
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    with torch.no_grad():
        expected, (h_n, c_n) = lstm(x)
        actual, (h, c) = run_steps(lstm, x, lstm.initial_state(2))
    assert len(calls) == (4 if prepares else 0)
    for a, e in ((actual, expected), (h, h_n), (c, c_n)):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    run_steps(lstm.train(), x, lstm.initial_state(2))
    assert len(calls) == (4 if prepares else 0)


def test_steps_in_training_carry_gradients_like_the_full_sequence(backend):
    torch.manual_seed(2)
    lstm = lstmkit.LSTM(3, 5, 2, batch_first=True, dtype=torch.float64, backend=backend)
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    grads = []
    for run in (lambda: lstm(x)[0], lambda: run_steps(lstm, x, lstm.initial_state(2))[0]):
        lstm.zero_grad()
        run().square().sum().backward()
        grads.append([p.grad.clone() for p in lstm.parameters()])
    for a, e in zip(*grads):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


def test_unbatched_steps_and_the_errors():
    lstm = lstmkit.LSTM(3, 4, 2).eval()
    state = lstm.initial_state()
    assert state[0].shape == (2, 4) and state[1].shape == (2, 4) and not state[0].any()
    x = torch.randn(5, 3)
    with torch.no_grad():
        expected, _ = lstm(x)
        actual, _ = run_steps(lstm, x, state)
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="bidirectional LSTM needs the whole sequence"):
        lstmkit.LSTM(3, 4, bidirectional=True).step(x[0], state)
    with pytest.raises(ValueError, match="input_size"):
        lstm.step(torch.randn(7), state)
    with pytest.raises(ValueError, match="state must be"):
        lstm.step(x[0], None)


@pytest.mark.skipif("cpu" not in lstmkit.backends(), reason="the CPU kernel does not build here")
@pytest.mark.parametrize("batch", [1, 2, 3], ids=["B=1", "B=2", "B=3"])
@pytest.mark.parametrize(
    "options",
    [{}, {"proj_size": 128}, {"peephole": True, "coupled_gates": True}, {"zoneout": (0.3, 0.2)}],
    ids=["vanilla", "projection", "peephole+coupled", "zoneout"],
)
def test_float32_steps_split_over_two_threads_equal_the_sequence(batch, options):
    """2 layers of 256 units: at one or two rows the float32 step splits its units over two threads and
    multiplies the weights as they lie (three rows: one thread, the BLAS). 30 steps equal the float64
    sequence on the same weights within float32 rounding, and a write to a weight's .data (which no version
    counter sees) is seen at the next step."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        lstm = lstmkit.LSTM(256, 256, 2, backend="cpu", **options).eval()
        x = torch.randn(30, batch, 256)
        with torch.no_grad():
            assert lstm._one_step(x[0], lstm.initial_state(batch)) is not None
            actual, (h, c) = run_steps(lstm, x, lstm.initial_state(batch))
            expected, (h_n, c_n) = lstm.double()(x.double())
            lstm.float()
            for a, e in ((actual, expected), (h, h_n), (c, c_n)):
                torch.testing.assert_close(a.double(), e, rtol=1e-4, atol=1e-5)
            lstm.step(x[0], (h, c))  # the step's weights made for these parameters
            lstm.weight_hh_l1.data.mul_(-1.0)
            lstm.bias_hh_l0.data.add_(0.5)
            changed, _ = lstm.step(x[0], (h, c))
            expected_changed, _ = lstm(x[:2], (h, c))  # two steps: the sequence loops, not the step kernel
            torch.testing.assert_close(changed, expected_changed[0], rtol=1e-5, atol=1e-5)
    finally:
        torch.set_num_threads(threads)
