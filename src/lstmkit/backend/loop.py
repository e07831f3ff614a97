"""The time loop shared by the Python backends: ``lstm_step`` over T steps."""

from __future__ import annotations

import torch
from torch import Tensor

from lstmkit.functional import GateWeights, StepCache, lstm_step
from lstmkit.trace import GateTrace


def run_steps(
    x_gates: Tensor,
    h: Tensor,
    c: Tensor,
    w: GateWeights,
    recurrent_mask: Tensor | None,
    keep_c: Tensor | None,
    keep_h: Tensor | None,
    record: bool,
) -> tuple[Tensor, Tensor, Tensor, list[StepCache], list[Tensor]]:
    """x_gates: (T, B, G*H). Returns outputs (T, B, P), h_T, c_T and, if ``record``, every step's
    cache and carried cell state c_t (empty lists otherwise)."""
    outputs, caches, cells = [], [], []
    for t in range(x_gates.shape[0]):
        kc = None if keep_c is None else keep_c[t]
        kh = None if keep_h is None else keep_h[t]
        h, c, cache = lstm_step(x_gates[t], h, c, w, recurrent_mask, kc, kh)
        outputs.append(h)
        if record:
            caches.append(cache)
            cells.append(c)
    return torch.stack(outputs), h, c, caches, cells


def trace_of(caches: list[StepCache], cells: list[Tensor], output: Tensor) -> GateTrace:
    """The detached gate trace, each field (T, B, H), of a recorded run."""
    gates = (torch.stack([getattr(s, name) for s in caches]) for name in "ifgo")
    return GateTrace(*gates, torch.stack(cells), output).map(Tensor.detach)
