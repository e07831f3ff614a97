"""The time loop in Python: ``lstm_step`` over T steps, and ``lstm_step_backward`` from T down to 1."""

from __future__ import annotations

import torch
from torch import Tensor

from lstmkit.functional import GateWeights, StepCache, StepGrads, lstm_step, lstm_step_backward
from lstmkit.trace import GateTrace


def stack_steps(steps: list[tuple]) -> list[Tensor | None]:
    """Per-step tuples of tensors (or None) -> one list of (T, ...) tensors (or None)."""
    return [None if field[0] is None else torch.stack(field) for field in zip(*steps)]


def at_step(t: Tensor | None, step: int) -> Tensor | None:
    return None if t is None else t[step]


def forward_steps(
    x_gates: Tensor,
    h: Tensor,
    c: Tensor,
    w: GateWeights,
    recurrent_mask: Tensor | None,
    keep_c: Tensor | None,
    keep_h: Tensor | None,
    record: bool,
) -> tuple[Tensor, Tensor, Tensor, StepCache | None]:
    """x_gates: (T, B, G*H). Returns outputs (T, B, P), h_T, c_T and, if ``record``, every step's cache
    stacked along T (None otherwise)."""
    outputs, caches = [], []
    for t in range(x_gates.shape[0]):
        h, c, cache = lstm_step(x_gates[t], h, c, w, recurrent_mask, at_step(keep_c, t), at_step(keep_h, t))
        outputs.append(h)
        if record:
            caches.append(cache)
    return torch.stack(outputs), h, c, StepCache(*stack_steps(caches)) if record else None


def backward_steps(
    d_output: Tensor,
    dh: Tensor,
    dc: Tensor,
    s: StepCache,
    w: GateWeights,
    recurrent_mask: Tensor | None,
    keep_c: Tensor | None,
    keep_h: Tensor | None,
) -> tuple[Tensor, Tensor, StepGrads]:
    """d_output: (T, B, P); dh, dc: dL/dh_T, dL/dc_T. Returns dL/dh_0, dL/dc_0 and the stacked step grads."""
    steps: list[StepGrads] = []
    for t in reversed(range(d_output.shape[0])):
        dh = dh + d_output[t]  # (B, P): the output's share plus what step t+1 sent back
        step = StepCache(*(at_step(field, t) for field in s))
        dh, dc, grads = lstm_step_backward(
            dh, dc, step, w, recurrent_mask, at_step(keep_c, t), at_step(keep_h, t)
        )
        steps.append(grads)
    return dh, dc, StepGrads(*stack_steps(steps[::-1]))


def trace_of(s: StepCache, output: Tensor, c_last: Tensor) -> GateTrace:
    """The detached gate trace, each field (T, B, H): the gates from the caches, the cell state c_t
    (the next step's c_{t-1}, then c_T) and the hidden state (the output)."""
    cells = torch.cat([s.c_prev[1:], c_last[None]])
    return GateTrace(s.i, s.f, s.g, s.o, cells, output).map(Tensor.detach)
