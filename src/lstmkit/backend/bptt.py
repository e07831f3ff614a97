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
from lstmkit.validation import traced


class TimeLoops(NamedTuple):
    """The two loops of a hand-BPTT backend:

    forward(x_gates, h0, c0, w, mask, keep_c, keep_h, record) -> output, h_T, c_T, StepCache (T, ...) | None
    backward(d_output, dh_T, dc_T, cache, w, mask, keep_c, keep_h) -> dh_0, dc_0, StepGrads (T, ...)

    With ``ragged``, both also take ``batch_sizes=`` (T,): the batch is sorted by length, longest first,
    and step t runs its first batch_sizes[t] rows. ``ops`` do the work outside the loops. With
    ``projects_input(x, w) -> bool``, forward also takes ``project=True`` where that says so and then x
    (T, B, I) in place of x_gates: it forms each step's W_ih x_t + b_ih + b_hh itself (never with layer
    norm, whose LN_x needs all of it). Elsewhere one product over all T steps streams W_ih once, not T times.
    ``casts(w, x) -> w`` gives the weights as the loops run them beside input x, inside the autograd
    Function: float32 weights under torch.autocast are cast there (a backend with it sets
    Backend.casts_weights), so that their gradients come back in float32, as the loops summed them.
    """

    forward: Callable
    backward: Callable
    ops: BulkOps = TORCH_OPS
    ragged: bool = False
    projects_input: Callable[[Tensor, GateWeights], bool] | None = None
    casts: Callable[[GateWeights, Tensor], GateWeights] = lambda w, x: w


PYTHON_LOOPS = TimeLoops(forward_steps, backward_steps)


TRACE_FIELDS = len(GateTrace.__dataclass_fields__)


class HandBPTT(torch.autograd.Function):
    """The layer's forward loop, and the backward loop with ``weight_gradients`` as its gradient.

    forward returns output, h_T, c_T, then (not differentiable) the GateTrace's fields when asked for,
    and what the backward needs, x_proj, x_stats and the StepCache: returned rather than kept on ``ctx``,
    so that torch.func's transforms and torch.compile see them (``setup_context`` saves them)."""

    @staticmethod
    def forward(loops, x, h0, c0, recurrent_mask, keep_c, keep_h, batch_sizes, want_trace, *weights):
        w = loops.casts(GateWeights(*weights), x)
        x_gates, x_proj, x_stats, project = loop_input(loops, x, w)
        ragged = ragged_arguments(batch_sizes)
        output, h, c, s = loops.forward(
            x_gates, h0, c0, w, recurrent_mask, keep_c, keep_h, True, **ragged, **project
        )
        trace = tuple(trace_of(s, output, c).as_dict().values()) if want_trace else ()
        saved = [t for t in (x_proj, x_stats, *s) if t is not None]  # the layer-norm ones only with it
        # Fresh tensors for h_T, c_T: they may be entries of the saved caches.
        return output, h.clone(), c.clone(), *trace, *saved

    @staticmethod
    def setup_context(ctx, inputs, outputs):
        loops, x, _, _, recurrent_mask, keep_c, keep_h, batch_sizes, want_trace, *weights = inputs
        ctx.loops, ctx.ragged = loops, ragged_arguments(batch_sizes)
        saved = outputs[3 + (TRACE_FIELDS if want_trace else 0) :]
        ctx.save_for_backward(x, recurrent_mask, keep_c, keep_h, *weights, *saved)
        ctx.mark_non_differentiable(*outputs[3:])
        # No zeros for the gradients of the caches (they have none; making them would cost as much as a
        # small backward); torch.compile's traced backward expects every gradient, so it keeps them.
        ctx.set_materialize_grads(torch.compiler.is_compiling())

    @staticmethod
    def vmap(
        info, in_dims, loops, x, h0, c0, recurrent_mask, keep_c, keep_h, batch_sizes, want_trace, *weights
    ):
        """torch.func.vmap over the input and the state: the mapped axis joins the batch (n slices of B
        sequences run as one batch of n*B), and the results are split back."""
        if batch_sizes is not None or any(dim is not None for dim in in_dims[7:]):  # (a ragged batch's
            # sizes are those of one slice's B sequences: they do not extend to n*B)
            raise ValueError(
                "lstmkit.LSTM under torch.func.vmap: only the input and the state may be mapped, not the "
                "weights (an ensemble of stacked weights), and not with lengths=; run those in a loop"
            )
        n = info.batch_size

        def fold(t, dim, axis):  # (..., B, ...) with the mapped axis at dim -> (..., n*B, ...)
            if t is None:
                return None
            t = (
                t.unsqueeze(axis).expand(*t.shape[:axis], n, *t.shape[axis:])
                if dim is None
                else t.movedim(dim, axis)
            )
            return t.flatten(axis, axis + 1)

        axes = (1, 0, 0, 0, 1, 1)  # the batch axis of x, h0, c0, recurrent_mask, keep_c, keep_h
        folded = [
            fold(t, dim, axis)
            for t, dim, axis in zip((x, h0, c0, recurrent_mask, keep_c, keep_h), in_dims[1:7], axes)
        ]
        outputs = HandBPTT.apply(loops, *folded, None, want_trace, *weights)
        steps = x.shape[0]
        w = GateWeights(*weights)
        # output, h_T, c_T, the trace, [x_proj, x_stats] (rows T*n*B), the StepCache: each split back
        batch_axes = [1, 0, 0] + [1] * (len(outputs) - 3)
        if w.ln_weight_ih is not None:
            first = 3 + (TRACE_FIELDS if want_trace else 0)
            batch_axes[first : first + 2] = ["rows", "rows"]
        split = []
        for t, axis in zip(outputs, batch_axes):
            if axis == "rows":  # (T*n*B, k) -> (n, T*B, k)
                split.append(t.view(steps, n, -1, t.shape[-1]).movedim(1, 0).flatten(1, 2))
            else:
                split.append(t.unflatten(axis, (n, -1)))
        return tuple(split), tuple(0 if axis == "rows" else axis for axis in batch_axes)

    @staticmethod
    def backward(ctx, d_output, dh, dc, *_other_grads):
        x, recurrent_mask, keep_c, keep_h, *rest = ctx.saved_tensors
        w = ctx.loops.casts(GateWeights(*rest[: len(GateWeights._fields)]), x)
        saved = iter(rest[len(GateWeights._fields) :])
        x_proj, x_stats = (None, None) if w.ln_weight_ih is None else (next(saved), next(saved))
        absent = (None,) * 4 if w.ln_weight_hh is None else ()  # the layer-norm StepCache fields
        s = StepCache(*saved, *absent)  # each field (T, ...)
        if d_output is None:  # an output the loss did not use
            d_output = s.h_in.new_zeros(s.h_in.shape)  # (T, B, P)
        dh = s.h_in.new_zeros(s.h_in.shape[1:]) if dh is None else dh  # (B, P)
        dc = s.c_prev.new_zeros(s.c_prev.shape[1:]) if dc is None else dc  # (B, H)
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
    per_step = loops.projects_input is not None and w.ln_weight_ih is None
    # (a traced batch size is symbolic: no branch on it, per step for every size)
    if per_step and (traced(x) or loops.projects_input(x, w)):
        return x, None, None, {"project": True}
    return *input_projection(x, w, loops.ops), {}


def make_run(loops: TimeLoops) -> Callable[..., LayerResult]:
    """A backend ``run`` (see lstmkit.backend.registry) that trains through HandBPTT with these loops."""

    def run(
        x, h0, c0, w, recurrent_mask=None, keep_c=None, keep_h=None, want_trace=False, batch_sizes=None
    ) -> LayerResult:
        inputs = (x, h0, c0, *w)
        present = [t for t in inputs if t is not None]
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in present)
        if needs_grad or any(map(torch._C._functorch.is_functorch_wrapped_tensor, present)):  # torch.func
            output, h, c, *rest = HandBPTT.apply(
                loops, x, h0, c0, recurrent_mask, keep_c, keep_h, batch_sizes, want_trace, *w
            )
            return LayerResult(output, h, c, GateTrace(*rest[:TRACE_FIELDS]) if want_trace else None)
        # inference: no caches unless the trace needs them
        w = loops.casts(w, x)
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
