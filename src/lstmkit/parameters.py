"""The variant options, and the parameters of one layer and direction: names, shapes, initial values."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lstmkit.functional import GateWeights, forget_rows, num_gates


@dataclass(frozen=True)
class Variant:
    """The LSTM variants torch.nn.LSTM lacks. All off by default, which gives torch's LSTM exactly."""

    peephole: bool = False
    """Diagonal weights from c_{t-1} into i and f and from c_t into o (Gers & Schmidhuber 2000)."""
    layer_norm: bool = False
    """Layer norm on W_ih x, on W_hh h and on the cell before its tanh (Ba et al. 2016)."""
    coupled_gates: bool = False
    """CIFG: i_t = 1 - f_t, so only three gates have weights (rows f, g, o)."""
    forget_bias: float = 0.0
    """Added to the forget rows of bias_ih at init; 1.0 eases long memory (Jozefowicz et al. 2015)."""
    recurrent_dropout: float = 0.0
    """Drop probability for units of h_{t-1}, one mask per sequence, training only (Gal & Ghahramani 2016)."""
    zoneout: float | tuple[float, float] = 0.0
    """Probability that a unit keeps its previous value, for (c, h) or both; expectation at evaluation
    (Krueger et al. 2016)."""
    weight_drop: float = 0.0
    """DropConnect on W_hh: each weight zeroed with this probability, the rest scaled by 1/(1-p), one mask
    per forward call, shared by every step and sequence; training only (AWD-LSTM, Merity et al. 2017)."""

    def __post_init__(self) -> None:
        for name, value in [
            ("recurrent_dropout", self.recurrent_dropout),
            ("weight_drop", self.weight_drop),
            *zip(("zoneout",) * 2, self.zoneouts),
        ]:
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")

    @property
    def zoneouts(self) -> tuple[float, float]:
        """Zoneout probabilities (for c, for h)."""
        z = self.zoneout
        return (float(z), float(z)) if isinstance(z, (int, float)) else (float(z[0]), float(z[1]))

    def describe(self) -> str:
        """The options that differ from the defaults, as ``name=value`` pairs."""
        defaults = Variant()
        return ", ".join(f"{k}={v}" for k, v in vars(self).items() if v != getattr(defaults, k))


def parameter_shapes(
    input_size: int, hidden_size: int, proj_size: int, bias: bool, variant: Variant
) -> dict[str, tuple[int, ...]]:
    """Shape of each parameter of one layer and direction, in torch.nn.LSTM's order, extras last."""
    gates = num_gates(variant.coupled_gates) * hidden_size
    out_size = proj_size or hidden_size
    shapes: dict[str, tuple[int, ...]] = {"weight_ih": (gates, input_size), "weight_hh": (gates, out_size)}
    if bias:
        shapes.update(bias_ih=(gates,), bias_hh=(gates,))
    if proj_size:
        shapes["weight_hr"] = (proj_size, hidden_size)
    if variant.peephole:
        if not variant.coupled_gates:
            shapes["weight_ci"] = (hidden_size,)
        shapes.update(weight_cf=(hidden_size,), weight_co=(hidden_size,))
    if variant.layer_norm:
        shapes.update(
            ln_weight_ih=(gates,), ln_weight_hh=(gates,), ln_weight_c=(hidden_size,), ln_bias_c=(hidden_size,)
        )
    return shapes


def make_parameters(
    module: nn.Module, suffix: str, shapes: dict[str, tuple[int, ...]], factory_kwargs: dict
) -> None:
    """Register uninitialised parameters named ``{name}{suffix}`` on the module (and their names in
    ``module.gate_names``)."""
    if "gate_names" not in vars(module):
        module.gate_names = set()
    for name, shape in shapes.items():
        module.register_parameter(name + suffix, nn.Parameter(torch.empty(shape, **factory_kwargs)))
        module.gate_names.add(name + suffix)


def gate_weights(module: nn.Module, suffix: str) -> GateWeights:
    """Gather a layer and direction's parameters (None where absent), from the module's own parameter
    dict: nn.Module's attribute lookup, and its error for a missing name, are slow next to a small step."""
    parameters = module._parameters
    names = (name + suffix for name in GateWeights._fields)
    return GateWeights(*(parameters[name] if name in module.gate_names else None for name in names))


@torch.no_grad()
def reset_parameters(w: GateWeights, hidden_size: int, variant: Variant) -> None:
    """torch.nn.LSTM's initialisation, U(-1/√H, 1/√H) in parameter order, then the extras:
    layer-norm gains 1 and shifts 0, and ``forget_bias`` added to the forget rows of bias_ih."""
    bound = 1.0 / math.sqrt(hidden_size)
    for name, p in w._asdict().items():
        if p is None:
            continue
        if name.startswith("ln_weight"):
            p.fill_(1.0)
        elif name.startswith("ln_bias"):
            p.zero_()
        else:
            p.uniform_(-bound, bound)
    if variant.forget_bias:
        w.bias_ih[forget_rows(hidden_size, variant.coupled_gates)] += variant.forget_bias
