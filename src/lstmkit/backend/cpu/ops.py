"""The compiled kernel's entry points as torch.library custom ops, each with a fake kernel (its shapes).

torch.compile, torch.export, FakeTensorMode, AOT autograd, torch.func and torch.jit.trace see these ops
(``torch.ops.lstmkit.*``), not the extension's Python functions, which they cannot look into. The ops are
not differentiable themselves: ``lstmkit.backend.bptt.HandBPTT`` differentiates through them, as it does
through the direct calls. A plain eager call on real tensors goes to the extension directly (``call``),
skipping the dispatcher's ~13 µs per op; both run the same C++ function.

Shapes (lstm_cpu.h has the whole contract): T steps, B batch, H hidden, P = proj_size or H, G*H gate rows.
``forward`` returns the StepCache fields that are present (9, or 13 with layer norm) and ``backward`` the
StepGrads fields that differ from others (dhh is da without layer norm, so it is left out there).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lstmkit.functional import StepCache, StepGrads
from lstmkit.validation import traced

NAMESPACE = "lstmkit"
LAYER_NORM_CACHE = ("hh_normed", "hh_rstd", "c_normed", "c_rstd")


def _kernel():
    from lstmkit.backend.cpu import kernel

    return kernel()


def _detached(arguments: dict) -> dict:
    """The arguments as constants to autograd, for the ops: HandBPTT differentiates through them (were
    they recorded themselves, torch.func's transforms would refuse their generated autograd)."""
    return {
        name: [t.detach() for t in value]
        if isinstance(value, list)
        else value.detach()
        if isinstance(value, Tensor)
        else value
        for name, value in arguments.items()
    }


def call(name: str, **arguments):
    """The kernel's ``name`` (matmul, matmul_tn, layer_norm, layer_norm_backward) on these arguments: the
    custom op where a tracer looks, else the extension."""
    if traced(*arguments.values()):
        return getattr(torch.ops.lstmkit, name)(**_detached(arguments))
    return getattr(_kernel(), name)(**arguments)


def run_forward(**arguments) -> tuple[Tensor, Tensor, Tensor, StepCache | None]:
    """The kernel's forward: output, h_T, c_T and the StepCache (None unless ``record``)."""
    if traced(*(t for t in arguments.values() if isinstance(t, Tensor))):
        output, h, c, cache = torch.ops.lstmkit.forward(**_detached(arguments))
        return output, h, c, cache_fields(cache) if arguments["record"] else None
    output, h, c, cache = _kernel().forward(**arguments)
    return output, h, c, None if cache is None else StepCache(*cache)  # in step_cache_fields() order


def run_backward(**arguments) -> tuple[Tensor, Tensor, StepGrads]:
    """The kernel's backward: dh_0, dc_0 and the StepGrads."""
    if traced(*(t for t in arguments.values() if isinstance(t, Tensor)), *arguments["cache"]):
        arguments["cache"] = [t for t in arguments["cache"] if t is not None]
        dh0, dc0, grads = torch.ops.lstmkit.backward(**_detached(arguments))
        return dh0, dc0, grads_fields(grads)
    arguments["cache"] = list(arguments["cache"])  # in step_cache_fields() order
    dh0, dc0, grads = _kernel().backward(**arguments)
    return dh0, dc0, StepGrads(*grads)  # in step_grads_fields() order


# forward --------------------------------------------------------------------------------------------------


@torch.library.custom_op(f"{NAMESPACE}::forward", mutates_args=())
def forward(
    x_gates: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    w_hr: Tensor | None,
    w_ci: Tensor | None,
    w_cf: Tensor | None,
    w_co: Tensor | None,
    ln_hh: Tensor | None,
    ln_c_w: Tensor | None,
    ln_c_b: Tensor | None,
    mask: Tensor | None,
    keep_c: Tensor | None,
    keep_h: Tensor | None,
    batch_sizes: Tensor | None,
    record: bool,
    w_ih: Tensor | None,
    bias: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
    """The recurrence (lstm_cpu.h): output (T, B, P), h_T (B, P), c_T (B, H), the present cache fields."""
    arguments = dict(locals())
    output, h, c, cache = _kernel().forward(**arguments)
    return output, h, c, [] if cache is None else [t for t in cache if t is not None]


@forward.register_fake
def _(x_gates, h0, c0, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b, mask, keep_c, keep_h, batch_sizes,
      record, w_ih, bias):  # fmt: skip
    steps, batch = x_gates.shape[:2]
    gates, size = w_hh.shape  # G*H, P
    hidden = c0.shape[-1]

    def new(*shape, like=c0):  # the cell's type (the arithmetic's); h and m have h0's (the operands')
        return like.new_empty(shape)

    cache = []
    if record:
        h_in, *rest, m = [new(steps, batch, size, like=h0)] + [new(steps, batch, hidden) for _ in range(8)]
        cache = [h_in, *rest, new(steps, batch, hidden, like=h0)]
        if ln_hh is not None:
            cache += [
                new(steps, batch, gates),
                new(steps, batch, 1),
                new(steps, batch, hidden),
                new(steps, batch, 1),
            ]
    return new(steps, batch, size, like=h0), new(batch, size, like=h0), new(batch, hidden), cache


def cache_fields(present: list[Tensor]) -> StepCache:
    """The op's cache list as a StepCache (None for the layer-norm fields it left out)."""
    if len(present) == len(StepCache._fields):
        return StepCache(*present)
    return StepCache(*present, *(None for _ in LAYER_NORM_CACHE))


# backward -------------------------------------------------------------------------------------------------


@torch.library.custom_op(f"{NAMESPACE}::backward", mutates_args=())
def backward(
    d_output: Tensor,
    dh_T: Tensor,
    dc_T: Tensor,
    cache: list[Tensor],
    w_hh: Tensor,
    w_hr: Tensor | None,
    w_ci: Tensor | None,
    w_cf: Tensor | None,
    w_co: Tensor | None,
    ln_hh: Tensor | None,
    ln_c_w: Tensor | None,
    mask: Tensor | None,
    keep_c: Tensor | None,
    keep_h: Tensor | None,
    batch_sizes: Tensor | None,
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """dh_0 (B, P), dc_0 (B, H), [da, dhh?, dh_new, dc_hat, ln_totals?] (? with layer norm only)."""
    arguments = dict(locals())
    arguments["cache"] = list(cache_fields(cache))
    dh0, dc0, grads = _kernel().backward(**arguments)
    d = StepGrads(*grads)
    if ln_hh is None:
        return dh0, dc0, [d.da, d.dh_new, d.dc_hat]
    return dh0, dc0, list(d)


@backward.register_fake
def _(d_output, dh_T, dc_T, cache, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, mask, keep_c, keep_h,
      batch_sizes):  # fmt: skip
    steps, batch, size = d_output.shape
    gates, hidden = w_hh.shape[0], dc_T.shape[-1]

    def new(*shape, like=d_output):  # the arithmetic's type; the products' operands have w_hh's
        return like.new_empty(shape)

    da, dh_new = new(steps, batch, gates, like=w_hh), new(steps, batch, size, like=w_hh)
    dc_hat = new(steps, batch, hidden)
    if ln_hh is None:
        return new(batch, size), new(batch, hidden), [da, dh_new, dc_hat]
    return (
        new(batch, size),
        new(batch, hidden),
        [da, new(steps, batch, gates, like=w_hh), dh_new, dc_hat, new(gates + 2 * hidden)],
    )


def grads_fields(present: list[Tensor]) -> StepGrads:
    """The op's gradient list as StepGrads (dhh = da without layer norm)."""
    if len(present) == 3:
        da, dh_new, dc_hat = present
        return StepGrads(da, da, dh_new, dc_hat)
    return StepGrads(*present)


# products and layer norm ----------------------------------------------------------------------------------


@torch.library.custom_op(f"{NAMESPACE}::matmul", mutates_args=())
def matmul(a: Tensor, b: Tensor, bias: Tensor | None) -> Tensor:
    """a (M, K) @ b (K, N) (+ bias (N,))."""
    return _kernel().matmul(a=a, b=b, bias=bias)


def _product_type(a: Tensor) -> torch.dtype:
    return torch.float32 if a.dtype == torch.bfloat16 else a.dtype  # bf16 products land in float32


@matmul.register_fake
def _(a, b, bias):
    return a.new_empty(a.shape[0], b.shape[1], dtype=_product_type(a))


@torch.library.custom_op(f"{NAMESPACE}::matmul_tn", mutates_args=())
def matmul_tn(a: Tensor, b: Tensor) -> Tensor:
    """a^T @ b for a (K, M), b (K, N)."""
    return _kernel().matmul_tn(a=a, b=b)


@matmul_tn.register_fake
def _(a, b):
    return a.new_empty(a.shape[1], b.shape[1], dtype=_product_type(a))


@torch.library.custom_op(f"{NAMESPACE}::layer_norm", mutates_args=())
def layer_norm(x: Tensor, gain: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
    """Layer norm of the rows of x (N, n): y (N, n) and (mean, rstd) (N, 2)."""
    return _kernel().layer_norm(x=x, gain=gain, bias=bias)


@layer_norm.register_fake
def _(x, gain, bias):
    return torch.empty_like(x), x.new_empty(x.shape[0], 2)


@torch.library.custom_op(f"{NAMESPACE}::layer_norm_backward", mutates_args=())
def layer_norm_backward(dy: Tensor, x: Tensor, stats: Tensor, gain: Tensor) -> tuple[Tensor, Tensor]:
    """dx (N, n) and dgain (n,)."""
    return _kernel().layer_norm_backward(dy=dy, x=x, stats=stats, gain=gain)


@layer_norm_backward.register_fake
def _(dy, x, stats, gain):
    return torch.empty_like(x), gain.new_empty(gain.shape)
