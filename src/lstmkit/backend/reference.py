"""The reference backend: autograd through ``lstm_step``, step by step. Slow, readable, the ground truth."""

from __future__ import annotations

from torch import Tensor

from lstmkit.backend.loop import forward_steps, trace_of
from lstmkit.backend.registry import Backend, LayerResult, register
from lstmkit.functional import GateWeights, input_projection


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
    x_gates, _, _ = input_projection(x, w)  # (T, B, G*H)
    output, h, c, s = forward_steps(x_gates, h0, c0, w, recurrent_mask, keep_c, keep_h, want_trace)
    return LayerResult(output, h, c, trace_of(s, output, c) if want_trace else None)


register(Backend("reference", run, priority=0, summary="autograd through the one-step gate math"))
