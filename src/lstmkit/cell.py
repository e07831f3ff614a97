"""LSTMCell: one step of the LSTM, a drop-in for torch.nn.LSTMCell."""

from __future__ import annotations

from torch import Tensor, nn

from lstmkit.functional import input_projection, lstm_step
from lstmkit.parameters import Variant, gate_weights, make_parameters, parameter_shapes, reset_parameters
from lstmkit.validation import check_input, check_like, check_shape


class LSTMCell(nn.Module):
    """One LSTM step, ``h_1, c_1 = cell(x, (h_0, c_0))`` (equations in ``lstmkit.functional``).

    Same arguments, parameter names (weight_ih, weight_hh, bias_ih, bias_hh), shapes and initialisation
    as torch.nn.LSTMCell. Keyword-only extras: ``peephole``, ``layer_norm``, ``coupled_gates`` and
    ``forget_bias`` (see ``lstmkit.parameters.Variant``). Input (B, I) or (I,); state (B, H) or (H,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        peephole: bool = False,
        layer_norm: bool = False,
        coupled_gates: bool = False,
        forget_bias: float = 0.0,
    ) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"LSTMCell: input_size and hidden_size must be positive, got {input_size}, {hidden_size}"
            )
        if forget_bias and not bias:
            raise ValueError("LSTMCell: forget_bias needs bias=True")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.variant = Variant(peephole, layer_norm, coupled_gates, forget_bias)
        shapes = parameter_shapes(input_size, hidden_size, 0, bias, self.variant)
        make_parameters(self, "", shapes, {"device": device, "dtype": dtype})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_parameters(gate_weights(self, ""), self.hidden_size, self.variant)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        check_input("LSTMCell", input, self.input_size, (1, 2), self.weight_ih)
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)  # (B, I)
        if hx is None:
            h0 = c0 = x.new_zeros(x.shape[0], self.hidden_size)
        else:
            h0, c0 = hx
            expected = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
            for name, t in (("hx[0]", h0), ("hx[1]", c0)):
                check_like("LSTMCell", name, t, self.weight_ih)
                check_shape("LSTMCell", name, t, expected)
            if not batched:
                h0, c0 = h0.unsqueeze(0), c0.unsqueeze(0)
        w = gate_weights(self, "")
        x_gates, _, _ = input_projection(x, w)  # (B, G*H)
        h, c, _ = lstm_step(x_gates, h0, c0, w)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))

    def extra_repr(self) -> str:
        extras = self.variant.describe()
        return (
            f"{self.input_size}, {self.hidden_size}"
            + ("" if self.bias else ", bias=False")
            + (f", {extras}" if extras else "")
        )
