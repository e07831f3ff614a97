"""Shared helpers: backends to parametrize over, torch twins, gradient comparison, the test data's folder."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import lstmkit
from lstmkit.train.checkpoint import STATE_FILE, load_tensors

# The test data: small files in the repository (tests/data/README.md says what each is); every test reads
# them from here, so that a plain clone runs the whole suite.
DATA = Path(__file__).resolve().parent / "data"
BACKENDS = lstmkit.backends()
# float32 agreement between two ways of computing the same thing (torch.nn.LSTM's bound, 1e-5): vectorised
# exp/tanh and GEMM blocking that depends on the batch size differ by a few ulps per step.
FLOAT32_ATOL = 1e-5
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One torch thread: the suite's tensors are tiny, and on a loaded 2-core machine a second thread
    makes small LSTMs many times slower (threads spin waiting for each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def torch_twin(ours: lstmkit.LSTM) -> torch.nn.LSTM:
    """A torch.nn.LSTM with the same options, loaded from our state dict (strict: names must match)."""
    twin = torch.nn.LSTM(
        ours.input_size,
        ours.hidden_size,
        ours.num_layers,
        bias=ours.bias,
        batch_first=ours.batch_first,
        bidirectional=ours.bidirectional,
        proj_size=ours.proj_size,
        dtype=ours.weight_ih_l0.dtype,
    )
    twin.load_state_dict(ours.state_dict(), strict=True)
    return twin


def assert_grads_close(expected: torch.Tensor, actual: torch.Tensor, rel: float = 1e-4) -> None:
    """Elementwise within ``rel`` of the tensor's own scale: |a - e| <= rel * (|e| + max|e|)."""
    scale = expected.abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=rel, atol=rel * scale + 1e-12)


def loss_of(output: torch.Tensor, h_n: torch.Tensor, c_n: torch.Tensor) -> torch.Tensor:
    """A loss that sends a different gradient into every output element and into h_n and c_n."""
    weights = torch.linspace(-1.0, 1.0, output.numel(), dtype=output.dtype).reshape(output.shape)
    return (output * weights).sum() + (h_n**2).sum() + (c_n * 0.5).sum()


def untrained(estimator, fitted: dict):
    """ESTIMATOR as ``load`` leaves it, with the FITTED state that fit would have learned (vocabulary,
    scales, class names) and an untrained network from the current torch seed."""
    estimator._restore_fitted(fitted)
    estimator.network = estimator._build_network().eval()
    return estimator


def kill_after_first_checkpoint(args: list[str], out_dir: Path, max_delay: float) -> tuple[int, float]:
    """Run `lstmkit ARGS --out OUT_DIR --checkpoint-every 0.002` in a child process and SIGKILL it a random
    moment (up to MAX_DELAY seconds) after its first checkpoint; the step that checkpoint holds, and the
    delay."""
    child = subprocess.Popen(
        [sys.executable, "-m", "lstmkit", *args, "--out", str(out_dir), "--checkpoint-every", "0.002"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    delay = random.uniform(0.0, max_delay)
    try:
        deadline = time.monotonic() + 120
        while not (out_dir / STATE_FILE).exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, f"the child ended before the kill: {child.stderr.read()!r}"
    return load_tensors(out_dir / STATE_FILE)[1]["loop"]["step"], delay  # loadable, whenever the kill came
