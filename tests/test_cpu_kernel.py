"""The compiled CPU backend's packaging: where it cannot be built, one warning and "auto" falls back."""

from __future__ import annotations

import pytest
import torch

import lstmkit
from lstmkit.backend import cpu, resolve


@pytest.fixture
def unbuildable(monkeypatch):
    """Make the build fail as it would with no compiler, and restore the real kernel afterwards."""
    from torch.utils import cpp_extension

    def fail(*args, **kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions")

    cpu.kernel.cache_clear()
    monkeypatch.setattr(cpp_extension, "load", fail)
    yield
    monkeypatch.undo()
    cpu.kernel.cache_clear()


def test_without_a_compiler_auto_falls_back_to_bptt_with_one_warning(unbuildable):
    with pytest.warns(UserWarning, match=r"compiled CPU kernel is not available \(Ninja is required"):
        names = lstmkit.backends()
    assert names[0] == "bptt" and "cpu" not in names
    assert resolve("auto").name == "bptt"
    with pytest.raises(ValueError, match=r"unavailable backend 'cpu'"):
        lstmkit.LSTM(2, 3, backend="cpu")
    lstm = lstmkit.LSTM(2, 3)  # "auto" still trains, on bptt, and warns no more
    out, _ = lstm(torch.randn(4, 1, 2, requires_grad=True))
    out.sum().backward()


@pytest.mark.skipif("cpu" not in lstmkit.backends(), reason="the CPU kernel does not build here")
def test_kernel_leaves_non_cpu_float_types_to_the_python_loops():
    """bfloat16 is not compiled: the cpu backend runs the same loops in Python and still agrees."""
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 4, backend="cpu").to(torch.bfloat16)
    x = torch.randn(5, 2, 3, dtype=torch.bfloat16)
    expected, _ = lstm.float()(x.float())
    actual, _ = lstm.to(torch.bfloat16)(x)
    assert actual.dtype == torch.bfloat16
    torch.testing.assert_close(actual.float(), expected, rtol=0, atol=3e-2)
