"""The BPTT backend: a torch.autograd.Function whose backward is derived by hand.

Forward: the input projection for all T steps as one matrix product, then ``lstm_step`` per step,
keeping each step's cache. Backward: ``lstm_step_backward`` from t = T down to 1, carrying dL/dh and
dL/dc back through time with no autograd inside the recurrence; then ``weight_gradients`` forms dL/dx
and every weight gradient as one large product or sum over all T*B rows.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lstmkit.backend import reference
from lstmkit.backend.loop import run_steps, trace_of
from lstmkit.backend.registry import Backend, LayerResult, register
from lstmkit.functional import (
    GateWeights,
    StepCache,
    StepGrads,
    input_projection,
    lstm_step_backward,
    weight_gradients,
)
from lstmkit.trace import GateTrace


def _stack(steps: list[tuple]) -> list[Tensor | None]:
    """Per-step tuples of tensors (or None) -> one tuple of (T, ...) tensors."""
    return [None if field[0] is None else torch.stack(field) for field in zip(*steps)]


def _at(t: Tensor | None, step: int) -> Tensor | None:
    return None if t is None else t[step]


class _LSTMRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, c0, recurrent_mask, keep_c, keep_h, want_trace, *weights):
        w = GateWeights(*weights)
        x_gates, x_proj, x_rstd = input_projection(x, w)  # (T, B, G*H)
        output, h, c, caches, cells = run_steps(x_gates, h0, c0, w, recurrent_mask, keep_c, keep_h, True)
        ctx.save_for_backward(x, recurrent_mask, keep_c, keep_h, x_proj, x_rstd, *weights, *_stack(caches))
        # Fresh tensors for h_T, c_T: without projection or keep factors they are cache entries.
        results = (output, h.clone(), c.clone())
        if not want_trace:
            return results
        trace = trace_of(caches, cells, output).as_dict().values()
        ctx.mark_non_differentiable(*trace)
        return *results, *trace

    @staticmethod
    def backward(ctx, d_output, dh, dc, *_trace_grads):
        x, recurrent_mask, keep_c, keep_h, x_proj, x_rstd, *saved = ctx.saved_tensors
        w = GateWeights(*saved[: len(GateWeights._fields)])
        s = StepCache(*saved[len(GateWeights._fields) :])  # each field (T, ...)
        step_grads: list[StepGrads] = [None] * len(d_output)
        for t in reversed(range(len(d_output))):
            dh = dh + d_output[t]  # (B, P): the output's share plus what step t+1 sent back
            step = StepCache(*(_at(field, t) for field in s))
            dh, dc, step_grads[t] = lstm_step_backward(
                dh, dc, step, w, recurrent_mask, _at(keep_c, t), _at(keep_h, t)
            )
        d = StepGrads(*_stack(step_grads))
        dx, dw = weight_gradients(x, x_proj, x_rstd, w, s, d, need_dx=ctx.needs_input_grad[0])
        return dx, dh, dc, None, None, None, None, *dw


def run(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w: GateWeights,
    recurrent_mask: Tensor | None = None,
    keep_c: Tensor | None = None,
    keep_h: Tensor | None = None,
    want_trace: bool = False,
) -> LayerResult:
    inputs = (x, h0, c0, *w)
    if not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)):
        return reference.run(x, h0, c0, w, recurrent_mask, keep_c, keep_h, want_trace)  # inference
    results = _LSTMRecurrence.apply(x, h0, c0, recurrent_mask, keep_c, keep_h, want_trace, *w)
    output, h, c, *trace = results
    return LayerResult(output, h, c, GateTrace(*trace) if want_trace else None)


register(Backend("bptt", run, priority=10, summary="hand-derived backpropagation through time"))
