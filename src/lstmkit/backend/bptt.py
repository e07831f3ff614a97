"""Hand-derived backpropagation through time: a torch.autograd.Function around a pair of time loops.

Forward: the input projection for all T steps as one matrix product, then the forward loop, which keeps
every step's cache. Backward: the backward loop from t = T down to 1 carries dL/dh and dL/dc back through
time with no autograd inside the recurrence; then ``weight_gradients`` forms dL/dx and every weight
gradient as one large product or sum over all T*B rows. The "bptt" backend runs the loops in Python
(``lstmkit.backend.loop``); the "cpu" backend runs the same loops compiled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from lstmkit.backend.loop import backward_steps, forward_steps, trace_of
from lstmkit.backend.registry import Backend, LayerResult, ragged_arguments, register
from lstmkit.functional import TORCH_OPS, BulkOps, GateWeights, StepCache, input_projection, weight_gradients
from lstmkit.trace import GateTrace


class TimeLoops(NamedTuple):
    """The two loops of a hand-BPTT backend:

    forward(x_gates, h0, c0, w, mask, keep_c, keep_h, record) -> output, h_T, c_T, StepCache (T, ...) | None
    backward(d_output, dh_T, dc_T, cache, w, mask, keep_c, keep_h) -> dh_0, dc_0, StepGrads (T, ...)

    With ``ragged``, both also take ``batch_sizes=`` (T,): the batch is sorted by length, longest first,
    and step t runs its first batch_sizes[t] rows. ``ops`` do the work outside the loops. With
    ``projects_input``, forward also takes ``project=True`` and then x (T, B, I) in place of x_gates: it
    forms each step's W_ih x_t + b_ih + b_hh itself (never with layer norm, whose LN_x needs all of it).
    """

    forward: Callable
    backward: Callable
    ops: BulkOps = TORCH_OPS
    ragged: bool = False
    projects_input: bool = False


PYTHON_LOOPS = TimeLoops(forward_steps, backward_steps)


class HandBPTT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, loops, x, h0, c0, recurrent_mask, keep_c, keep_h, batch_sizes, want_trace, *weights):
        w = GateWeights(*weights)
        x_gates, x_proj, x_stats, project = loop_input(loops, x, w)
        ragged = ragged_arguments(batch_sizes)
        output, h, c, s = loops.forward(
            x_gates, h0, c0, w, recurrent_mask, keep_c, keep_h, True, **ragged, **project
        )
        ctx.loops, ctx.ragged = loops, ragged
        ctx.save_for_backward(x, recurrent_mask, keep_c, keep_h, x_proj, x_stats, *weights, *s)
        # Fresh tensors for h_T, c_T: they may be entries of the saved caches.
        results = (output, h.clone(), c.clone())
        if not want_trace:
            return results
        trace = trace_of(s, output, c).as_dict().values()
        ctx.mark_non_differentiable(*trace)
        return *results, *trace

    @staticmethod
    def backward(ctx, d_output, dh, dc, *_trace_grads):
        x, recurrent_mask, keep_c, keep_h, x_proj, x_stats, *saved = ctx.saved_tensors
        w = GateWeights(*saved[: len(GateWeights._fields)])
        s = StepCache(*saved[len(GateWeights._fields) :])  # each field (T, ...)
        dh0, dc0, d = ctx.loops.backward(
            d_output.contiguous(), dh, dc, s, w, recurrent_mask, keep_c, keep_h, **ctx.ragged
        )
        dx, dw = weight_gradients(x, x_proj, x_stats, w, s, d, ctx.needs_input_grad[1], ctx.loops.ops)
        return None, dx, dh0, dc0, None, None, None, None, None, *dw


def loop_input(
    loops: TimeLoops, x: Tensor, w: GateWeights
) -> tuple[Tensor, Tensor | None, Tensor | None, dict]:
    """What the forward loop reads: the input projection of all steps (T, B, G*H), with what its backward
    needs (see ``input_projection``), and the loop's extra keyword; or x itself, for a loop that projects
    each step."""
    if loops.projects_input and w.ln_weight_ih is None:
        return x, None, None, {"project": True}
    return *input_projection(x, w, loops.ops), {}


def make_run(loops: TimeLoops) -> Callable[..., LayerResult]:
    """A backend ``run`` (see lstmkit.backend.registry) that trains through HandBPTT with these loops."""

    def run(
        x, h0, c0, w, recurrent_mask=None, keep_c=None, keep_h=None, want_trace=False, batch_sizes=None
    ) -> LayerResult:
        inputs = (x, h0, c0, *w)
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
            output, h, c, *trace = HandBPTT.apply(
                loops, x, h0, c0, recurrent_mask, keep_c, keep_h, batch_sizes, want_trace, *w
            )
            return LayerResult(output, h, c, GateTrace(*trace) if want_trace else None)
        # inference: no caches unless the trace needs them
        x_gates, _, _, project = loop_input(loops, x, w)
        ragged = ragged_arguments(batch_sizes)
        output, h, c, s = loops.forward(
            x_gates, h0, c0, w, recurrent_mask, keep_c, keep_h, want_trace, **ragged, **project
        )
        return LayerResult(output, h, c, trace_of(s, output, c) if want_trace else None)

    return run


register(
    Backend("bptt", make_run(PYTHON_LOOPS), priority=10, summary="hand-derived backpropagation through time")
)
