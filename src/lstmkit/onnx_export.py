"""The LSTM under ``torch.onnx.export``: each layer becomes one node of ONNX's own ``LSTM`` operator.

Both exporters are covered: the current one (``dynamo=True``) through ``torch.onnx.ops.symbolic_multi_out``,
the TorchScript one (``dynamo=False``) through an autograd.Function with a ``symbolic``. What ONNX's LSTM
expresses maps onto it: bidirectional layers, ``lengths`` (``sequence_lens``), initial states, peepholes
(``P``) and coupled gates (``input_forget``). Layer norm, proj_size and zoneout have no ONNX form and are
refused with one error naming the option, as is a training-mode export with a random option active.

ONNX's LSTM, per direction (gate order i, o, f, c; ours is i, f, g, o)::

    X (T, B, I), W (D, 4H, I), R (D, 4H, H), B (D, 8H) = [Wb, Rb], sequence_lens (B,) int32,
    initial_h, initial_c (D, B, H), P (D, 3H) = [P_i, P_o, P_f]  ->  Y (T, D, B, H), Y_h, Y_c (D, B, H)

With ``input_forget``, onnxruntime computes f = 1 - i: our coupled i = 1 - σ(a_f) = σ(-a_f) becomes its
input gate (rows -W_f, peephole -w_cf), and its forget gate follows.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from lstmkit.functional import GateWeights
from lstmkit.parameters import gate_weights

ONNX_ORDER = (0, 3, 1, 2)  # ONNX's i, o, f, c as indices into our i, f, g, o


def exporting() -> bool:
    """Whether torch.onnx.export is running. Its flag is read directly too: under torch.export's strict
    mode, which the exporter falls back to, torch.compile reads torch.onnx.is_in_onnx_export() as False."""
    from torch.onnx._internal.exporter import _flags

    return torch.onnx.is_in_onnx_export() or getattr(_flags, "_is_onnx_exporting", False)


@contextlib.contextmanager
def outside_export():
    """Compute untraced within torch.onnx.export's TorchScript trace (its LSTM nodes' values)."""
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        yield
    finally:
        torch._C._set_tracing_state(state)


def unsupported(lstm) -> str | None:
    """Why this LSTM has no ONNX LSTM form, or None."""
    if lstm.variant.layer_norm:
        return "layer_norm=True"
    if lstm.proj_size:
        return f"proj_size={lstm.proj_size}"
    if any(lstm.variant.zoneouts):
        return f"zoneout={lstm.variant.zoneout}"
    return None


def check_exportable(lstm, want_trace: bool) -> None:
    reason = unsupported(lstm)
    if reason is not None:
        raise ValueError(
            f"lstmkit.LSTM: torch.onnx.export cannot express {reason}: ONNX's LSTM operator has no such "
            "option; export a model without it, or use torch.export.export for the PyTorch stack"
        )
    if lstm.training and (lstm.dropout or lstm.variant.recurrent_dropout or lstm.variant.weight_drop):
        raise ValueError(
            "lstmkit.LSTM: torch.onnx.export of a model in training mode with dropout would bake one random "
            "mask in; call model.eval() before exporting"
        )
    if want_trace:
        raise ValueError("lstmkit.LSTM: return_trace=True has no ONNX form; export without it")


def onnx_weights(w: GateWeights, hidden: int, coupled: bool) -> tuple[Tensor, Tensor, Tensor | None, ...]:
    """One direction's W (4H, I), R (4H, H), B (8H,) or None, P (3H,) or None in ONNX's gate order: a
    gather of rows by a constant index (times constant signs with coupled gates), which the exporters
    fold into the weights."""
    # coupled (ours f, g, o): ONNX's input gate is σ(-a_f), its forget rows unused (zeros), o, then c = g
    blocks, signs = ((0, 2, 0, 1), (-1.0, 1.0, 0.0, 1.0)) if coupled else (ONNX_ORDER, (1.0,) * 4)
    rows = torch.cat([torch.arange(k * hidden, (k + 1) * hidden) for k in blocks])
    sign = torch.tensor(signs).repeat_interleave(hidden)

    def gates(t: Tensor) -> Tensor:  # (G*H, ...) -> (4H, ...)
        sign_t = sign.to(t.dtype).view(-1, *([1] * (t.dim() - 1)))
        return t.index_select(0, rows.to(t.device)) * sign_t.to(t.device)

    W, R = gates(w.weight_ih), gates(w.weight_hh)
    B = None if w.bias_ih is None else torch.cat([gates(w.bias_ih), gates(w.bias_hh)])
    P = None
    if w.weight_cf is not None:  # ONNX's P is (i, o, f)
        i_peep = -w.weight_cf if coupled else w.weight_ci
        P = torch.cat([i_peep, w.weight_co, torch.zeros_like(w.weight_cf) if coupled else w.weight_cf])
    return W, R, B, P


def stacked(tensors: list[Tensor | None]) -> Tensor | None:
    return None if tensors[0] is None else torch.stack(tensors)


class TorchScriptLSTM(torch.autograd.Function):
    """For the TorchScript exporter: forward gives the values it traced (computed by the module), and
    ``symbolic`` the ONNX node that replaces it in the graph."""

    @staticmethod
    def forward(ctx, x, W, R, B, lengths, h0, c0, P, hidden, direction, input_forget, values):
        return tuple(t.clone() for t in values)

    @staticmethod
    def symbolic(g, x, W, R, B, lengths, h0, c0, P, hidden, direction, input_forget, values):
        def absent(t):
            return g.op("prim::Constant").setType(torch._C.NoneType.get()) if t is None else t

        if lengths is not None:
            lengths = g.op("Cast", lengths, to_i=6)  # int32
        inputs = [x, W, R, absent(B), absent(lengths), h0, c0]
        if P is not None:
            inputs.append(P)
        return g.op(
            "LSTM",
            *inputs,
            hidden_size_i=hidden,
            direction_s=direction,
            input_forget_i=input_forget,
            outputs=3,
        )


def lstm_node(x, W, R, B, lengths, h0, c0, P, *, hidden: int, direction: str, input_forget: int, values):
    """Y (T, D, B, H), Y_h, Y_c (D, B, H) as one ONNX LSTM node; ``values`` computes them eagerly."""
    if torch.jit.is_tracing():
        return TorchScriptLSTM.apply(
            x, W, R, B, lengths, h0, c0, P, hidden, direction, input_forget, values()
        )
    steps, batch = x.shape[:2]
    directions = W.shape[0]
    seq_lens = None if lengths is None else lengths.to(torch.int32)
    return torch.onnx.ops.symbolic_multi_out(
        "LSTM",
        [x, W, R, B, seq_lens, h0, c0, P],
        {"hidden_size": hidden, "direction": direction, "input_forget": input_forget},
        dtypes=[x.dtype] * 3,
        shapes=[(steps, directions, batch, hidden), (directions, batch, hidden), (directions, batch, hidden)],
        version=14,
    )


def run_layers(lstm, x: Tensor, h0: Tensor, c0: Tensor, lengths: Tensor | None, layer_values):
    """LSTM._run_layers during ONNX export: x (T, B, I) -> output (T, B, D*H), h_n, c_n (L*D, B, H).

    ``layer_values(layer, layer_input, h0, c0, lengths)`` is the module's own computation of one layer, as
    (output (T, B, D*H), h_n (D, B, H), c_n (D, B, H)): the values the TorchScript exporter traces."""
    steps, batch = x.shape[:2]
    directions, hidden = lstm.num_directions, lstm.hidden_size
    coupled = lstm.variant.coupled_gates
    h_n, c_n = [], []
    layer_input = x
    for layer in range(lstm.num_layers):
        weights = [
            onnx_weights(gate_weights(lstm, lstm._suffix(layer, d)), hidden, coupled)
            for d in range(directions)
        ]
        W, R, B, P = (stacked(list(field)) for field in zip(*weights))
        rows = slice(layer * directions, (layer + 1) * directions)

        def values(layer=layer, layer_input=layer_input, rows=rows):  # as ONNX returns them
            with outside_export(), torch.no_grad():
                output, h, c = layer_values(layer, layer_input, h0[rows], c0[rows], lengths)
                return output.view(*output.shape[:2], directions, hidden).transpose(1, 2), h, c

        Y, Y_h, Y_c = lstm_node(
            layer_input,
            W,
            R,
            B,
            lengths,
            h0[rows],
            c0[rows],
            P,
            hidden=hidden,
            direction="bidirectional" if directions == 2 else "forward",
            input_forget=int(coupled),
            values=values,
        )
        layer_input = Y.transpose(1, 2).reshape(steps, batch, directions * hidden)  # (T, B, D*H)
        h_n.append(Y_h)
        c_n.append(Y_c)
    return layer_input, torch.cat(h_n), torch.cat(c_n)
