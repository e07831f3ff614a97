"""The LSTM gate math, in one place: one step forward, its hand-derived backward, and the weight gradients.

Every backend calls these functions; nothing else in lstmkit writes a gate equation.

Sizes: B batch, I input, H hidden (cell), P size of h (``proj_size`` or H), G gates (4: i, f, g, o;
3 with coupled gates: f, g, o). One step, with the variants in brackets::

    a_t  = LN_x(W_ih x_t) + b_ih + b_hh + LN_h(W_hh (m ⊙ h_{t-1}))   pre-activations (G*H)
    i_t  = σ(a_i [+ w_ci ⊙ c_{t-1}])          input gate     [coupled_gates: i_t = 1 - f_t]
    f_t  = σ(a_f [+ w_cf ⊙ c_{t-1}])          forget gate    [peephole: w_c* diagonal]
    g_t  = tanh(a_g)                           candidate ("new information")
    c̃_t  = f_t ⊙ c_{t-1} + i_t ⊙ g_t           new cell state
    o_t  = σ(a_o [+ w_co ⊙ c̃_t])              output gate
    h̃_t  = [W_hr] (o_t ⊙ tanh([LN_c] c̃_t))     new hidden state [proj_size]
    c_t  = k^c_t ⊙ c_{t-1} + (1 - k^c_t) ⊙ c̃_t   carried state
    h_t  = k^h_t ⊙ h_{t-1} + (1 - k^h_t) ⊙ h̃_t

LN_x, LN_h (gains only; b_ih, b_hh are their shifts) and LN_c (gain and shift) are present only with
``layer_norm`` (Ba et al. 2016); m is the recurrent-dropout mask (Gal & Ghahramani 2016), one per
sequence. The keep factors k are Bernoulli zoneout masks in training, the zoneout probability at
evaluation (Krueger et al. 2016), and 1 on the padded steps past a sequence's length, which freezes
the state there; without zoneout or padding they are absent and c_t = c̃_t, h_t = h̃_t.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

LAYER_NORM_EPS = 1e-5


def torch_matmul(a: Tensor, b: Tensor, bias: Tensor | None = None) -> Tensor:
    """a (M, K) @ b (K, N) (+ bias (N,) on every row) by torch."""
    return torch.mm(a, b) if bias is None else torch.addmm(bias, a, b)


def torch_layer_norm(x: Tensor, gain: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
    """Layer norm of each row of x (N, n) by torch: LN(x) ⊙ gain + bias, and the rows' (mean, rstd) (N, 2)."""
    y, mean, rstd = torch.native_layer_norm(x, x.shape[-1:], gain, bias, LAYER_NORM_EPS)
    return y, torch.cat([mean, rstd], dim=-1)


def torch_layer_norm_backward(dy: Tensor, x: Tensor, stats: Tensor, gain: Tensor) -> tuple[Tensor, Tensor]:
    """``torch_layer_norm``'s backward: dL/dx (N, n) and dL/dgain (n,) from dL/dy (N, n)."""
    mean, rstd = (t.contiguous() for t in stats.split(1, dim=-1))
    dx, dgain, _ = torch.ops.aten.native_layer_norm_backward(
        dy, x, x.shape[-1:], mean, rstd, gain, None, [True, True, False]
    )
    return dx, dgain


class BulkOps(NamedTuple):
    """The large operations outside the time loop, over all T*B rows at once (see ``input_projection`` and
    ``weight_gradients``). torch's by default; a backend may bring faster ones with the same results."""

    matmul: Callable[..., Tensor] = torch_matmul
    layer_norm: Callable[..., tuple[Tensor, Tensor]] = torch_layer_norm
    layer_norm_backward: Callable[..., tuple[Tensor, Tensor]] = torch_layer_norm_backward


TORCH_OPS = BulkOps()


class GateWeights(NamedTuple):
    """The parameters of one layer and direction. Field names are the module's parameter names
    without the ``_l{k}[_reverse]`` suffix (torch.nn.LSTM's names for those torch has)."""

    weight_ih: Tensor  # (G*H, I)
    weight_hh: Tensor  # (G*H, P)
    bias_ih: Tensor | None = None  # (G*H,)
    bias_hh: Tensor | None = None  # (G*H,)
    weight_hr: Tensor | None = None  # (P, H)   proj_size
    weight_ci: Tensor | None = None  # (H,)     peephole (absent with coupled gates)
    weight_cf: Tensor | None = None  # (H,)     peephole
    weight_co: Tensor | None = None  # (H,)     peephole
    ln_weight_ih: Tensor | None = None  # (G*H,) layer_norm gain on W_ih x
    ln_weight_hh: Tensor | None = None  # (G*H,) layer_norm gain on W_hh h
    ln_weight_c: Tensor | None = None  # (H,)   layer_norm gain on the cell
    ln_bias_c: Tensor | None = None  # (H,)   layer_norm shift on the cell


class StepCache(NamedTuple):
    """What one step computed: the gate trace, and all the hand-derived backward needs."""

    h_in: Tensor  # (B, P) h_{t-1} as it entered W_hh (after the recurrent-dropout mask)
    c_prev: Tensor  # (B, H) c_{t-1}
    i: Tensor  # (B, H) input gate (1 - f with coupled gates)
    f: Tensor  # (B, H) forget gate
    g: Tensor  # (B, H) candidate
    o: Tensor  # (B, H) output gate
    c_new: Tensor  # (B, H) c̃_t, before keep factors
    tanh_c: Tensor  # (B, H) tanh(LN_c(c̃_t))
    m: Tensor  # (B, H) o ⊙ tanh(LN_c(c̃_t)), the input of W_hr
    hh_normed: Tensor | None  # (B, G*H) layer_norm: normalised W_hh h_in
    hh_rstd: Tensor | None  # (B, 1)
    c_normed: Tensor | None  # (B, H) layer_norm: normalised c̃_t
    c_rstd: Tensor | None  # (B, 1)


class StepGrads(NamedTuple):
    """Per-step gradients that the weight gradients are summed from after the backward loop."""

    da: Tensor  # (B, G*H) dL/da_t, the pre-activations
    dhh: Tensor  # (B, G*H) dL/d(W_hh h_in)
    dh_new: Tensor  # (B, P) dL/dh̃_t
    dc_hat: Tensor  # (B, H) dL/d tanh's argument LN_c(c̃_t)
    ln_totals: Tensor | None = None  # (G*H + 2H,) layer_norm: ``layer_norm_totals``, if the loop summed them


def num_gates(coupled_gates: bool) -> int:
    return 3 if coupled_gates else 4


def forget_rows(hidden_size: int, coupled_gates: bool) -> slice:
    """Rows of the forget gate in the stacked G*H weights (order i, f, g, o; coupled: f, g, o)."""
    start = 0 if coupled_gates else hidden_size
    return slice(start, start + hidden_size)


def is_coupled(w: GateWeights, hidden_size: int) -> bool:
    return w.weight_hh.shape[0] == 3 * hidden_size


def layer_norm(x: Tensor) -> tuple[Tensor, Tensor]:
    """Normalise over the last dimension: returns (x - mean) / sqrt(var + eps) and 1 / sqrt(var + eps)."""
    mean = x.mean(-1, keepdim=True)
    rstd = torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + LAYER_NORM_EPS)
    return (x - mean) * rstd, rstd


def layer_norm_backward(d_normed: Tensor, normed: Tensor, rstd: Tensor) -> Tensor:
    """dL/dx from dL/d(normed): rstd ⊙ (dn - mean(dn) - n ⊙ mean(dn ⊙ n))."""
    mean_d = d_normed.mean(-1, keepdim=True)
    mean_dn = (d_normed * normed).mean(-1, keepdim=True)
    return rstd * (d_normed - mean_d - normed * mean_dn)


def gate_bias(w: GateWeights) -> Tensor | None:
    """b_ih + b_hh (G*H,), the one bias every step adds; None without biases."""
    return None if w.bias_ih is None else w.bias_ih + w.bias_hh


def input_projection(
    x: Tensor, w: GateWeights, ops: BulkOps = TORCH_OPS
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """The input's share of the pre-activations for all steps at once, as one matrix product.

    x: (..., I). Returns LN_x(W_ih x) + b_ih + b_hh (..., G*H) and, with layer norm, what its backward
    needs: W_ih x (N, G*H) and the rows' (mean, rstd) (N, 2), N the product of x's leading sizes.
    """
    rows = x.reshape(-1, x.shape[-1])  # (N, I)
    bias = gate_bias(w)
    if w.ln_weight_ih is None:
        return ops.matmul(rows, w.weight_ih.t(), bias).view(*x.shape[:-1], -1), None, None
    x_proj = ops.matmul(rows, w.weight_ih.t())  # (N, G*H)
    gates, x_stats = ops.layer_norm(x_proj, w.ln_weight_ih, bias)
    return gates.view(*x.shape[:-1], -1), x_proj, x_stats


def lstm_step(
    x_gates: Tensor,
    h_prev: Tensor,
    c_prev: Tensor,
    w: GateWeights,
    recurrent_mask: Tensor | None = None,
    keep_c: Tensor | None = None,
    keep_h: Tensor | None = None,
) -> tuple[Tensor, Tensor, StepCache]:
    """One LSTM step (equations in the module docstring).

    x_gates: (B, G*H) from ``input_projection``; h_prev: (B, P); c_prev: (B, H);
    recurrent_mask: (B, P) or None; keep_c: (B, H), keep_h: (B, P) or None.
    Returns h_t (B, P), c_t (B, H) and the step's cache.
    """
    hidden_size = c_prev.shape[-1]
    h_in = h_prev if recurrent_mask is None else h_prev * recurrent_mask
    hh = h_in @ w.weight_hh.t()  # (B, G*H)
    hh_normed = hh_rstd = None
    if w.ln_weight_hh is not None:
        hh_normed, hh_rstd = layer_norm(hh)
        hh = hh_normed * w.ln_weight_hh
    a = x_gates + hh  # (B, G*H)

    if is_coupled(w, hidden_size):
        a_f, a_g, a_o = a.chunk(3, dim=-1)
    else:
        a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
    if w.weight_cf is not None:
        a_f = a_f + w.weight_cf * c_prev
    f = torch.sigmoid(a_f)
    if is_coupled(w, hidden_size):
        i = 1 - f
    else:
        i = torch.sigmoid(a_i if w.weight_ci is None else a_i + w.weight_ci * c_prev)
    g = torch.tanh(a_g)
    c_new = f * c_prev + i * g  # (B, H)
    o = torch.sigmoid(a_o if w.weight_co is None else a_o + w.weight_co * c_new)

    c_normed = c_rstd = None
    if w.ln_weight_c is not None:
        c_normed, c_rstd = layer_norm(c_new)
        tanh_c = torch.tanh(c_normed * w.ln_weight_c + w.ln_bias_c)
    else:
        tanh_c = torch.tanh(c_new)
    m = o * tanh_c  # (B, H)
    h_new = m if w.weight_hr is None else m @ w.weight_hr.t()  # (B, P)

    c = c_new if keep_c is None else torch.lerp(c_new, c_prev, keep_c)
    h = h_new if keep_h is None else torch.lerp(h_new, h_prev, keep_h)
    cache = StepCache(h_in, c_prev, i, f, g, o, c_new, tanh_c, m, hh_normed, hh_rstd, c_normed, c_rstd)
    return h, c, cache


def lstm_step_backward(
    dh: Tensor,
    dc: Tensor,
    s: StepCache,
    w: GateWeights,
    recurrent_mask: Tensor | None = None,
    keep_c: Tensor | None = None,
    keep_h: Tensor | None = None,
) -> tuple[Tensor, Tensor, StepGrads]:
    """The chain rule through one ``lstm_step``, written out from its equations.

    dh: dL/dh_t (B, P) (this step's output plus what step t+1 sent back); dc: dL/dc_t (B, H).
    Returns dL/dh_{t-1}, dL/dc_{t-1} and the step's gradients for the weight sums.
    """
    dh_new = dh if keep_h is None else dh * (1 - keep_h)  # h_t = k h_{t-1} + (1 - k) h̃_t
    dc_new = dc if keep_c is None else dc * (1 - keep_c)

    dm = dh_new if w.weight_hr is None else dh_new @ w.weight_hr  # (B, H)
    do = dm * s.tanh_c
    dc_hat = dm * s.o * (1 - s.tanh_c * s.tanh_c)  # through h = o ⊙ tanh(ĉ)
    if w.ln_weight_c is not None:
        dc_new = dc_new + layer_norm_backward(dc_hat * w.ln_weight_c, s.c_normed, s.c_rstd)
    else:
        dc_new = dc_new + dc_hat
    da_o = do * s.o * (1 - s.o)
    if w.weight_co is not None:
        dc_new = dc_new + da_o * w.weight_co  # o_t peeks at c̃_t

    # c̃ = f ⊙ c_prev + i ⊙ g
    di = dc_new * s.g
    df = dc_new * s.c_prev
    dc_prev = dc_new * s.f
    da_g = dc_new * s.i * (1 - s.g * s.g)
    if is_coupled(w, s.c_prev.shape[-1]):
        da_f = (df - di) * s.f * (1 - s.f)  # i = 1 - f
        da = torch.cat([da_f, da_g, da_o], dim=-1)
    else:
        da_i = di * s.i * (1 - s.i)
        da_f = df * s.f * (1 - s.f)
        da = torch.cat([da_i, da_f, da_g, da_o], dim=-1)
        if w.weight_ci is not None:
            dc_prev = dc_prev + da_i * w.weight_ci
    if w.weight_cf is not None:
        dc_prev = dc_prev + da_f * w.weight_cf
    if keep_c is not None:
        dc_prev = dc_prev + dc * keep_c

    if w.ln_weight_hh is not None:
        dhh = layer_norm_backward(da * w.ln_weight_hh, s.hh_normed, s.hh_rstd)
    else:
        dhh = da
    dh_prev = dhh @ w.weight_hh  # (B, P)
    if recurrent_mask is not None:
        dh_prev = dh_prev * recurrent_mask
    if keep_h is not None:
        dh_prev = dh_prev + dh * keep_h
    return dh_prev, dc_prev, StepGrads(da, dhh, dh_new, dc_hat)


def layer_norm_totals(s: StepCache, d: StepGrads) -> Tensor:
    """The layer-norm parameters' gradients inside the loop, summed over time and batch: (G*H + 2H,) =
    [Σ da ⊙ hh_normed (ln_weight_hh), Σ dc_hat ⊙ c_normed (ln_weight_c), Σ dc_hat (ln_bias_c)]."""
    sums = [d.da * s.hh_normed, d.dc_hat * s.c_normed, d.dc_hat]
    return torch.cat([t.sum(dim=(0, 1)) for t in sums])


def weight_gradients(
    x: Tensor,
    x_proj: Tensor | None,
    x_stats: Tensor | None,
    w: GateWeights,
    s: StepCache,
    d: StepGrads,
    need_dx: bool = True,
    ops: BulkOps = TORCH_OPS,
) -> tuple[Tensor | None, GateWeights]:
    """dL/dx and every parameter's gradient, each one large product or sum over all T*B rows.

    x: (T, B, I); x_proj, x_stats from ``input_projection``; s and d: every step's cache and gradients
    stacked along a leading T axis. Returns dL/dx (T, B, I) (None unless need_dx) and the gradients
    as a GateWeights (None where the parameter is absent).
    """

    def rows(t: Tensor) -> Tensor:  # (T, B, n) -> (T*B, n)
        return t.reshape(-1, t.shape[-1])

    def total(t: Tensor) -> Tensor:  # sum over time and batch (bf16 terms summed into float32)
        return t.sum(dim=(0, 1), dtype=torch.float32 if t.dtype == torch.bfloat16 else None)

    hidden_size = s.c_prev.shape[-1]
    grads = {"weight_hh": ops.matmul(rows(d.dhh).t(), rows(s.h_in))}  # (G*H, P)
    d_xproj = rows(d.da)  # (T*B, G*H)
    if w.ln_weight_ih is not None:
        d_xproj, grads["ln_weight_ih"] = ops.layer_norm_backward(d_xproj, x_proj, x_stats, w.ln_weight_ih)
    grads["weight_ih"] = ops.matmul(d_xproj.t(), rows(x))  # (G*H, I)
    if w.bias_ih is not None:
        grads["bias_ih"] = grads["bias_hh"] = total(d.da)
    if w.weight_hr is not None:
        grads["weight_hr"] = ops.matmul(rows(d.dh_new).t(), rows(s.m))  # (P, H)
    if w.weight_cf is not None:
        gate = dict(zip("ifgo" if not is_coupled(w, hidden_size) else "fgo", d.da.split(hidden_size, -1)))
        grads["weight_cf"] = total(gate["f"] * s.c_prev)
        grads["weight_co"] = total(gate["o"] * s.c_new)
        if w.weight_ci is not None:
            grads["weight_ci"] = total(gate["i"] * s.c_prev)
    if w.ln_weight_hh is not None:
        totals = layer_norm_totals(s, d) if d.ln_totals is None else d.ln_totals
        sizes = [d.da.shape[-1], hidden_size, hidden_size]
        grads["ln_weight_hh"], grads["ln_weight_c"], grads["ln_bias_c"] = totals.split(sizes)
    dx = ops.matmul(d_xproj, w.weight_ih).view(*x.shape) if need_dx else None  # (T, B, I)
    return dx, GateWeights(**{name: grads.get(name) for name in GateWeights._fields})
