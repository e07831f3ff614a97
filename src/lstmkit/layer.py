"""LSTM: stacked, bidirectional, variable-length LSTM layers; a drop-in for torch.nn.LSTM."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstmkit import onnx_export, sampling
from lstmkit.backend import StepPath, resolve
from lstmkit.backend.registry import ragged_arguments
from lstmkit.functional import GateWeights
from lstmkit.parameters import Variant, gate_weights, make_parameters, parameter_shapes, reset_parameters
from lstmkit.trace import GateTrace
from lstmkit.validation import check_input, check_lengths, check_like, check_shape, traced


def step_cell(x: Tensor) -> torch.dtype:
    """The dtype ``LSTM.step`` carries the cell state c in for input x: float32 for bf16 (rounded to bf16
    every step, the long sum would lose its small increments), else x's."""
    return torch.float32 if x.dtype == torch.bfloat16 else x.dtype


def autocast_dtype(x) -> torch.dtype | None:
    """The dtype torch.autocast runs the LSTM in on x's device, or None where autocast is off there."""
    data = x.data if isinstance(x, PackedSequence) else x
    if not isinstance(data, Tensor):
        return None
    device = data.device.type
    if not (torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)):
        return None
    return torch.get_autocast_dtype(device)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of x (T, B, ...) within its own length; padded steps stay where they are."""
    if lengths is None:
        return x.flip(0)
    steps = torch.arange(x.shape[0], device=x.device)[:, None]  # (T, 1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (T, B)
    return x.gather(0, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


class LSTM(nn.Module):
    """A multi-layer LSTM written from the gate equations (see ``lstmkit.functional``).

    ``output, (h_n, c_n) = lstm(x, hx=None)`` exactly as torch.nn.LSTM: the same constructor arguments,
    parameter names, shapes, gate order (i, f, g, o) and initialisation, so state dicts load both ways.
    x is (T, B, I), (B, T, I) with batch_first, (T, I) unbatched, or a PackedSequence; hx = (h_0, c_0)
    with h_0 (L*D, B, P) and c_0 (L*D, B, H), where P is proj_size or H.

    Keyword-only extras, all off by default:
      backend: "auto" (the fastest available), or a name from ``lstmkit.backends()``.
      peephole, layer_norm, coupled_gates, forget_bias, recurrent_dropout, zoneout, weight_drop: the
        variants of ``lstmkit.parameters.Variant``.
    and in the call:
      lengths: (B,) valid steps of each sequence of a padded batch; same result as a PackedSequence.
      return_trace: also return a ``GateTrace`` of every gate, cell and hidden value.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
        peephole: bool = False,
        layer_norm: bool = False,
        coupled_gates: bool = False,
        forget_bias: float = 0.0,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        weight_drop: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LSTM: {name} must be a positive integer, got {value!r}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"LSTM: dropout must be in [0, 1], got {dropout}")
        if not 0 <= proj_size < hidden_size:
            raise ValueError(f"LSTM: proj_size must be in [0, hidden_size={hidden_size}), got {proj_size}")
        if forget_bias and not bias:
            raise ValueError("LSTM: forget_bias needs bias=True")
        if dropout and num_layers == 1:
            warnings.warn(
                f"dropout={dropout} acts between layers, and num_layers=1 has none; it has no effect",
                stacklevel=2,
            )
        resolve(backend)  # unknown names fail here, not at the first call
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size, self.backend = bidirectional, proj_size, backend
        self.variant = Variant(
            peephole=peephole,
            layer_norm=layer_norm,
            coupled_gates=coupled_gates,
            forget_bias=forget_bias,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            weight_drop=weight_drop,
        )
        factory = {"device": device, "dtype": dtype}
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else self.num_directions * self.output_size
            for direction in range(self.num_directions):
                shapes = parameter_shapes(layer_input, hidden_size, proj_size, bias, self.variant)
                make_parameters(self, self._suffix(layer, direction), shapes, factory)
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Size of h: proj_size, or hidden_size without projection."""
        return self.proj_size or self.hidden_size

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _suffixes(self):
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                yield self._suffix(layer, direction)

    def reset_parameters(self) -> None:
        for suffix in self._suffixes():
            reset_parameters(gate_weights(self, suffix), self.hidden_size, self.variant)

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """Parameters per layer and direction, as torch.nn.LSTM.all_weights."""
        return [[p for p in gate_weights(self, s) if p is not None] for s in self._suffixes()]

    def flatten_parameters(self) -> None:
        """No-op, for code written for torch.nn.LSTM (there is no cuDNN weight buffer to compact)."""

    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: tuple[Tensor, Tensor] | None = None,
        lengths: Tensor | list[int] | None = None,
        return_trace: bool = False,
    ):
        """Returns ``output, (h_n, c_n)``, and the ``GateTrace`` last with ``return_trace=True``. The extras
        may also come by position (after hx), as torch.onnx's TorchScript exporter passes defaults."""
        if torch.jit.is_tracing() and not onnx_export.exporting():
            raise RuntimeError(
                "lstmkit.LSTM does not support torch.jit.trace (a traced module would lose the LSTM's "
                "gradients); use torch.export.export(model, (x,)) or torch.compile, and torch.onnx.export "
                "for ONNX"
            )
        cast = autocast_dtype(input)
        if cast is None:
            return self._forward(input, hx, lengths, return_trace, None)
        # torch.autocast: input, state and weights in the autocast dtype, as torch.nn.LSTM runs there
        device = (input.data if isinstance(input, PackedSequence) else input).device.type
        with torch.autocast(device, enabled=False):
            hx = None if hx is None else tuple(t.to(cast) for t in hx)
            return self._forward(input.to(cast), hx, lengths, return_trace, cast)

    def _forward(self, input, hx, lengths, return_trace: bool, cast: torch.dtype | None):
        """forward, with the weights cast to ``cast`` once per call where it is not None (autocast)."""
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ValueError("LSTM: pass either a PackedSequence or lengths=, not both")
            x, cpu_lengths = pad_packed_sequence(input)  # (T, B, I), sequences in their original order
            lengths, batched, batch_first = cpu_lengths, True, False
        else:
            x, batch_first = input, self.batch_first
        like = self.weight_ih_l0 if cast is None else self.weight_ih_l0.new_empty(0, dtype=cast)
        check_input("LSTM", x, self.input_size, (2, 3), like)
        batched = x.dim() == 3
        if not batched:
            if lengths is not None:
                raise ValueError("LSTM: lengths= needs a batched input (T, B, I)")
            x = x.unsqueeze(1)
        elif batch_first:
            x = x.transpose(0, 1)
        steps, batch = x.shape[:2]
        h0, c0 = self._initial_state(hx, batch, batched, x)
        if lengths is not None:
            lengths = check_lengths("LSTM", lengths, steps, batch, x.device)

        one_step = None
        if steps == 1 and lengths is None and not return_trace and cast is None and self.num_directions == 1:
            one_step = self._one_step(x[0], (h0, c0))  # a one-step call: the streaming kernel, all layers
        if one_step is not None:
            path, prepared = one_step
            h_n, c_n = path.run(x[0], h0, c0.to(step_cell(x)), prepared, self.variant.zoneouts)
            output, trace, c_n = h_n[-1:], None, c_n.to(c0.dtype)  # (1, B, P)
        elif onnx_export.exporting():
            onnx_export.check_exportable(self, return_trace)
            output, h_n, c_n = onnx_export.run_layers(self, x, h0, c0, lengths, self._layer_values)
            trace = None
        else:
            output, h_n, c_n, trace = self._run_layers(x, h0, c0, lengths, return_trace, cast=cast)

        if packed:
            order = input.sorted_indices
            out_sorted = output if order is None else output.index_select(1, order)
            sorted_lengths = cpu_lengths if order is None else cpu_lengths[order.cpu()]
            data = pack_padded_sequence(out_sorted, sorted_lengths).data
            output = PackedSequence(data, input.batch_sizes, input.sorted_indices, input.unsorted_indices)
        elif not batched:
            output, h_n, c_n = output.squeeze(1), h_n.squeeze(1), c_n.squeeze(1)
            trace = trace and trace.map(lambda t: t.squeeze(2))
        elif batch_first:
            output = output.transpose(0, 1)
            trace = trace and trace.map(lambda t: t.transpose(1, 2))
        return (output, (h_n, c_n), trace) if return_trace else (output, (h_n, c_n))

    def initial_state(self, batch_size: int | None = None) -> tuple[Tensor, Tensor]:
        """Zero state for ``step``: h (L, B, P) and c (L, B, H), or (L, P), (L, H) without a batch size; c in
        float32 for a bf16 module (``step`` keeps the cell, a long sum, in float32)."""
        w = self.weight_ih_l0
        batch = () if batch_size is None else (batch_size,)
        return (
            w.new_zeros(self.num_layers, *batch, self.output_size),
            w.new_zeros(self.num_layers, *batch, self.hidden_size, dtype=step_cell(w)),
        )

    def step(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One time step through all layers, for streaming: ``y_t, state = lstm.step(x_t, state)``.

        x: (B, I) or (I,); state from ``initial_state`` or the previous step. y_t (B, P) or (P,) is the last
        layer's h_t: step by step, the same as ``forward`` over the whole sequence. Where the backend has a
        one-step path that takes x and these layers (the cpu backend's kernel: on the CPU, without layer
        norm), every layer runs in one call whenever no gradient is needed and nothing random is drawn,
        in training mode too; otherwise this is ``forward`` on a one-step sequence (gradients, dropout or
        zoneout in training, layer norm). A bf16 module's state carries c in float32 (``initial_state``), so
        that the cell keeps its precision from step to step; c in bf16 is taken too."""
        if self.bidirectional:
            raise ValueError("LSTM.step: a bidirectional LSTM needs the whole sequence; call the module")
        check_input("LSTM.step", x, self.input_size, (1, 2), self.weight_ih_l0)
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            got = type(state).__name__
            raise ValueError(f"LSTM.step: state must be (h, c) from initial_state(), got {got}")
        batched = x.dim() == 2
        one_step = self._one_step(x, state)
        cell = step_cell(x)
        if one_step is not None:
            path, prepared = one_step
            h, c = self._initial_state(tuple(state), x.shape[0] if batched else 1, batched, x, cell=cell)
            h, c = path.run(x if batched else x[None], h, c, prepared, self.variant.zoneouts)
            h, c = (h, c) if batched else (h[:, 0], c[:, 0])
            return h[-1], (h, c)
        time_axis = 1 if self.batch_first and batched else 0
        output, (h, c) = self.forward(x.unsqueeze(time_axis), state)
        return output.squeeze(time_axis), (h, c.to(cell))

    def _one_step(self, x: Tensor, state) -> tuple[StepPath, object] | None:
        """The backend's one-step path and its weights for these layers, where ``step`` takes it: when no
        gradient is needed and nothing random is drawn (eval(), or training without dropout, recurrent
        dropout or zoneout) and no tracer looks, on a backend whose path takes x and these layers; else
        None."""
        if self.training and (self.dropout and self.num_layers > 1 or self.variant.recurrent_dropout):
            return None
        if self.training and (any(self.variant.zoneouts) or self.variant.weight_drop):
            return None
        if torch.is_grad_enabled() and (
            x.requires_grad
            or any(isinstance(t, Tensor) and t.requires_grad for t in state)
            or any(p.requires_grad for p in self._parameters.values())
        ):
            return None
        if autocast_dtype(x) is not None or traced(x, *state):  # tracers see forward's custom ops
            return None
        path = resolve(self.backend).step
        if path is None or not path.takes(x):
            return None
        prepared = self._step_weights(path)
        return None if prepared is None else (path, prepared)

    def _step_weights(self, path: StepPath) -> object | None:
        """``path.prepare`` of the layers, made once and again only after a parameter or the path changes
        (a new tensor, or an in-place write its version counter records). The cpu backend's kernel reads
        the weights as they lie but for a bf16 module's VNNI copies beyond two rows, which do not see a
        write through ``.data``."""
        key = (id(path), *[(p.data_ptr(), p._version) for p in self._parameters.values()])  # .to(): new data
        cached = getattr(self, "_step_weights_cache", None)
        if cached is None or cached[0] != key:
            layers = [gate_weights(self, self._suffix(layer, 0)) for layer in range(self.num_layers)]
            self._step_weights_cache = (key, path.prepare(layers))
        return self._step_weights_cache[1]

    def _initial_state(
        self, hx, batch: int, batched: bool, x: Tensor, cell: torch.dtype | None = None
    ) -> tuple[Tensor, Tensor]:
        """h_0 (L*D, B, P) and c_0 (L*D, B, H): zeros, or hx checked against those shapes. c_0 comes back in
        ``cell`` (x's dtype by default); with bf16 x it may be given in float32 too (``step``'s cell)."""
        stack = self.num_layers * self.num_directions
        cell = x.dtype if cell is None else cell
        if hx is None:
            zeros = x.new_zeros(stack, batch, self.output_size)
            return zeros, x.new_zeros(stack, batch, self.hidden_size, dtype=cell)
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError(f"LSTM: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        h, c = hx
        sizes = (self.output_size, self.hidden_size)
        float32_cell = torch.float32 if x.dtype == torch.bfloat16 else None  # (a bf16 module's c may be)
        for name, t, size, also in zip(("h_0", "c_0"), hx, sizes, (None, float32_cell)):
            check_like("LSTM", name, t, x, also)  # x has the parameters' dtype and device, or autocast's
            check_shape("LSTM", name, t, (stack, batch, size) if batched else (stack, size))
        return tuple(t if batched else t.unsqueeze(1) for t in (h, c.to(cell)))

    def _layer_values(self, layer: int, x: Tensor, h0: Tensor, c0: Tensor, lengths: Tensor | None):
        """One layer's output (T, B, D*P), h_n and c_n (D, B, P/H) (see onnx_export.run_layers)."""
        output, h_n, c_n, _ = self._run_layers(x, h0, c0, lengths, False, range(layer, layer + 1))
        return output, h_n, c_n

    def _run_layers(
        self,
        x: Tensor,
        h0: Tensor,
        c0: Tensor,
        lengths: Tensor | None,
        want_trace: bool,
        layers: range | None = None,
        cast: torch.dtype | None = None,
    ):
        """x: (T, B, I). Returns output (T, B, D*P), h_n (L*D, B, P), c_n (L*D, B, H), GateTrace or None.
        ``layers`` (a range; all by default) runs only those, with h0 and c0 holding their rows; the
        weights are cast to ``cast`` where given.

        Padding reaches the backend as keep factors of 1 (the state is held), or for a ragged backend as
        batch sizes per step over the batch sorted once by length (finished sequences leave the batch)."""
        backend = resolve(self.backend)
        steps, batch = x.shape[:2]
        valid = None  # (T, B): step t is inside sequence b
        if lengths is not None and (traced(lengths) or bool((lengths < steps).any())):
            valid = torch.arange(steps, device=x.device)[:, None] < lengths
        order = batch_sizes = None
        if valid is not None and backend.ragged:
            order = torch.argsort(lengths, descending=True, stable=True)
            x, h0, c0, lengths = x[:, order], h0[:, order], c0[:, order], lengths[order]
            batch_sizes = valid.sum(dim=1).cpu()  # (T,): sequences still running at step t
        h_n, c_n, traces = [], [], []
        layer_input = x
        layers = range(self.num_layers) if layers is None else layers
        for layer in layers:
            if layer and self.dropout and self.training:
                layer_input = sampling.dropout(layer_input, self.dropout)
            outputs = []
            for direction in range(self.num_directions):
                k = (layer - layers.start) * self.num_directions + direction
                seq = layer_input if direction == 0 else reverse_padded(layer_input, lengths)
                # masks are drawn for the batch in its given order, then follow the sort
                keep_c, keep_h = self._keep_factors(steps, batch, None if order is not None else valid, x)
                mask = self._recurrent_mask(batch, x)
                if order is not None:
                    keep_c = None if keep_c is None else keep_c[:, order]
                    keep_h = None if keep_h is None else keep_h[:, order]
                    mask = None if mask is None else mask[order]
                w = self._dropped_connections(gate_weights(self, self._suffix(layer, direction)))
                if cast is not None and not backend.casts_weights(seq):
                    w = GateWeights(*(None if t is None else t.to(cast) for t in w))
                ragged = ragged_arguments(batch_sizes)
                result = backend.run(seq, h0[k], c0[k], w, mask, keep_c, keep_h, want_trace, **ragged)
                out, trace = result.output, result.trace
                if direction:
                    out = reverse_padded(out, lengths)
                    trace = trace and trace.map(lambda t: reverse_padded(t, lengths))
                outputs.append(out)
                h_n.append(result.h_n)
                c_n.append(result.c_n)
                traces.append(trace)
            layer_input = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
        output, h_n, c_n = layer_input, torch.stack(h_n), torch.stack(c_n)
        trace = GateTrace.stack(traces) if want_trace else None
        if order is not None:  # back to the caller's order
            restore = torch.argsort(order)
            output, h_n, c_n = output[:, restore], h_n[:, restore], c_n[:, restore]
            trace = trace and trace.map(lambda t: t[:, :, restore])
        if valid is not None:  # padded steps hold the frozen state: report zeros, as PackedSequence does
            output = output * valid[..., None]
            trace = trace and trace.map(lambda t: t * valid[..., None])
        return output, h_n, c_n, trace

    def _keep_factors(self, steps: int, batch: int, valid: Tensor | None, like: Tensor):
        """Keep factors k^c (T, B, H) and k^h (T, B, P): zoneout, and 1 on padded steps (or None)."""

        def keep(p: float, size: int) -> Tensor | None:
            k = None
            if p and self.training:
                k = sampling.bernoulli_mask((steps, batch, size), p, like)
            elif p:
                k = like.new_full((1, 1, 1), p).expand(steps, batch, size)
            if valid is not None:
                pad = ~valid[..., None]  # (T, B, 1)
                k = pad.to(like.dtype).expand(steps, batch, size) if k is None else torch.where(pad, 1.0, k)
            return k

        zoneout_c, zoneout_h = self.variant.zoneouts
        return keep(zoneout_c, self.hidden_size), keep(zoneout_h, self.output_size)

    def _dropped_connections(self, w: GateWeights) -> GateWeights:
        """Weight drop in training: W_hh * M, M (G*H, P) of 0 with probability p and 1/(1-p) otherwise,
        a new mask per call; the gradient reaches W_hh through the product, so dropped weights get 0."""
        p = self.variant.weight_drop
        if not (p and self.training):
            return w
        return w._replace(
            weight_hh=w.weight_hh * sampling.dropout_mask(tuple(w.weight_hh.shape), p, w.weight_hh)
        )

    def _recurrent_mask(self, batch: int, like: Tensor) -> Tensor | None:
        """Gal & Ghahramani's mask on h_{t-1}, (B, P), scaled by 1/(1-p); training only."""
        p = self.variant.recurrent_dropout
        if not (p and self.training):
            return None
        return sampling.dropout_mask((batch, self.output_size), p, like)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        defaults = {"num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0}
        defaults.update(bidirectional=False, proj_size=0, backend="auto")
        s += "".join(f", {k}={getattr(self, k)!r}" for k, v in defaults.items() if getattr(self, k) != v)
        extras = self.variant.describe()
        return s + (f", {extras}" if extras else "")
