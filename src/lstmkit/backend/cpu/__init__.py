"""The "cpu" backend: the hand-BPTT time loops compiled from the C++ files beside this one (the shape contract
in ``lstm_cpu.h``, which lists them), built on first use and cached.

torch.utils.cpp_extension builds it with ninja and the system C++ compiler into torch's extension cache
(~/.cache/torch_extensions, or $TORCH_EXTENSIONS_DIR), tuned for this machine's CPU; ``lstmkit build``
builds it ahead of time. Where it cannot be built, the backend is not available and "auto" falls back to
"bptt" with one warning. Tensors that are not float32/float64 on the CPU run the same loops in Python.
"""

from __future__ import annotations

import hashlib
import platform
import warnings
from pathlib import Path

import torch
from torch import Tensor

from lstmkit.backend.bptt import PYTHON_LOOPS, TimeLoops, make_run
from lstmkit.backend.cpu import ops
from lstmkit.backend.registry import Backend, StepPath, register
from lstmkit.functional import (
    BulkOps,
    GateWeights,
    StepCache,
    StepGrads,
    gate_bias,
    input_projection,
    torch_layer_norm,
    torch_layer_norm_backward,
    torch_matmul,
)
from lstmkit.validation import traced

# The kernel's weights multiply unpacked up to this batch (kUnpackedBatch in gemm.h), and the input
# projection is then one product over all steps; kernel_matmul packs its right operand from PACKED_ROWS rows.
SMALL_BATCH, PACKED_ROWS = 2, 64
KERNEL_DIR = Path(__file__).parent
KERNEL_FILES = sorted([*KERNEL_DIR.glob("*.cpp"), *KERNEL_DIR.glob("*.h")])  # every one in the build's name
SOURCES = [path for path in KERNEL_FILES if path.suffix == ".cpp"]  # translation units; they include the .h
# -ffast-math without -ffinite-math-only: NaN and infinity keep their IEEE meaning (a clamp must not turn a
# NaN into the edge of its range), the rest of fast-math (reassociation, no errno) stays.
CFLAGS = ["-O3", "-march=native", "-ffast-math", "-fno-finite-math-only", "-fopenmp"]


def _build_name() -> str:
    """A name per source and header, flags, torch version and CPU: an edit to any kernel file rebuilds, and a
    cached build is never run on the wrong CPU."""
    cpu_flags = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu_flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
    texts = [f"{path.name}\n{path.read_text()}" for path in KERNEL_FILES]
    key = "|".join([*texts, " ".join(CFLAGS), torch.__version__, platform.machine(), cpu_flags])
    return "lstmkit_cpu_" + hashlib.sha256(key.encode()).hexdigest()[:12]


_KERNEL: list = []  # [the module, or None where it cannot be built], once tried


def kernel():
    """The compiled module, built the first time (10-20 seconds) and loaded from the cache after; None
    (with one warning) when it cannot be built here, or when its per-step fields disagree with Python's.
    After the first call, a list lookup that torch.compile traces as a constant (LSTM's constructor makes
    that first call, outside any compiled region)."""
    if not _KERNEL:
        _KERNEL.append(_build())
    return _KERNEL[0]


kernel.cache_clear = _KERNEL.clear  # as functools.cache's: the next call tries again


def _build():
    from torch.utils import cpp_extension

    try:
        module = cpp_extension.load(
            name=_build_name(),
            sources=[str(path) for path in SOURCES],
            extra_cflags=CFLAGS,
            extra_ldflags=["-fopenmp"],
        )
    except Exception as error:  # no compiler, no ninja, a failed build: fall back, never fail the user
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    else:
        reason = field_mismatch(module)
        if reason is None:
            return module
    warnings.warn(f"lstmkit: the compiled CPU kernel is not available ({reason}); using 'bptt'", stacklevel=2)
    return None


def field_mismatch(module) -> str | None:
    """Why the kernel's StepCache and StepGrads lists would be misread here, or None: they cross the boundary
    in the order of the kernel's field names, which must be those of lstmkit.functional's NamedTuples."""
    for theirs, ours in ((module.step_cache_fields(), StepCache), (module.step_grads_fields(), StepGrads)):
        if tuple(theirs) != ours._fields:
            return (
                f"its {ours.__name__} fields ({', '.join(theirs)}) differ from "
                f"lstmkit.functional.{ours.__name__}'s ({', '.join(ours._fields)})"
            )
    return None


def _compiled(x: Tensor) -> bool:
    """Whether the kernel takes this tensor: float32 or float64 on the CPU, and the kernel built."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and kernel() is not None


def _contiguous(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


def _padding_keep(keep: Tensor | None, batch_sizes: Tensor | None, size: int, like: Tensor) -> Tensor | None:
    """Keep factors that also hold every row past its length: a ragged batch in the Python loops' form."""
    if batch_sizes is None:
        return keep
    steps, batch = like.shape[:2]
    pad = torch.arange(batch, device=like.device) >= batch_sizes.to(like.device)[:, None]  # (T, B)
    if keep is None:
        return pad[..., None].to(like.dtype).expand(steps, batch, size)
    return torch.where(pad[..., None], 1.0, keep)


def _weight_arguments(w: GateWeights) -> dict[str, Tensor | None]:
    """The recurrence's weights by the kernel's argument names; None for a variant that is off."""
    return {
        "w_hh": w.weight_hh.contiguous(),
        "w_hr": _contiguous(w.weight_hr),
        "w_ci": _contiguous(w.weight_ci),
        "w_cf": _contiguous(w.weight_cf),
        "w_co": _contiguous(w.weight_co),
        "ln_hh": _contiguous(w.ln_weight_hh),
        "ln_c_w": _contiguous(w.ln_weight_c),
    }


def _keep_arguments(mask, keep_c, keep_h, batch_sizes) -> dict[str, Tensor | None]:
    """Recurrent dropout's mask, zoneout's keep factors and a ragged batch's sizes, by name."""
    return {
        "mask": _contiguous(mask),
        "keep_c": _contiguous(keep_c),
        "keep_h": _contiguous(keep_h),
        "batch_sizes": _contiguous(batch_sizes),
    }


def kernel_forward(
    x_gates, h0, c0, w: GateWeights, mask, keep_c, keep_h, record: bool, batch_sizes=None, project=False
):
    """See bptt.TimeLoops: with ``project``, x_gates is x (T, B, I) and each step projects its own x_t."""
    if not _compiled(x_gates):
        if project:
            x_gates, _, _ = input_projection(x_gates, w)
        keep_c = _padding_keep(keep_c, batch_sizes, c0.shape[-1], x_gates)
        keep_h = _padding_keep(keep_h, batch_sizes, h0.shape[-1], x_gates)
        return PYTHON_LOOPS.forward(x_gates, h0, c0, w, mask, keep_c, keep_h, record)
    w_ih = bias = None
    if project:
        w_ih, bias = w.weight_ih, gate_bias(w)
    return ops.run_forward(
        x_gates=x_gates.contiguous(),
        h0=h0.contiguous(),
        c0=c0.contiguous(),
        **_weight_arguments(w),
        ln_c_b=_contiguous(w.ln_bias_c),
        **_keep_arguments(mask, keep_c, keep_h, batch_sizes),
        record=record,
        w_ih=_contiguous(w_ih),
        bias=_contiguous(bias),
    )


def kernel_backward(d_output, dh, dc, s: StepCache, w: GateWeights, mask, keep_c, keep_h, batch_sizes=None):
    if not _compiled(d_output):
        keep_c = _padding_keep(keep_c, batch_sizes, dc.shape[-1], d_output)
        keep_h = _padding_keep(keep_h, batch_sizes, dh.shape[-1], d_output)
        return PYTHON_LOOPS.backward(d_output, dh, dc, s, w, mask, keep_c, keep_h)
    return ops.run_backward(
        d_output=d_output,
        dh_T=dh.contiguous(),
        dc_T=dc.contiguous(),
        cache=s,
        **_weight_arguments(w),
        **_keep_arguments(mask, keep_c, keep_h, batch_sizes),
    )


def kernel_matmul(a: Tensor, b: Tensor, bias: Tensor | None = None) -> Tensor:
    """a (M, K) @ b (K, N) (+ bias (N,) on every row) through the kernel's tiled GEMM for float32 on the
    CPU, else torch. b may be any view (it is packed anyway). A transposed a, as in the weight gradients'
    sums over T*B rows (a^T b), goes to the kernel's matmul_tn, which transposes the narrower operand
    into a reused buffer. Below PACKED_ROWS rows of a (a one-step call), packing b would cost more than the
    product: torch's."""
    if not (_compiled(a) and a.dtype == torch.float32 and b.dtype == torch.float32):
        return torch_matmul(a, b, bias)
    if not traced(a) and a.shape[0] < PACKED_ROWS:  # (a traced size is symbolic: no branch on it)
        return torch_matmul(a, b, bias)
    if bias is None and not a.is_contiguous() and a.t().is_contiguous():
        return ops.call("matmul_tn", a=a.t(), b=b)
    return ops.call("matmul", a=a.contiguous(), b=b, bias=_contiguous(bias))


def kernel_layer_norm(x: Tensor, gain: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
    """functional.torch_layer_norm in the kernel (its buffers reused between calls)."""
    if not _compiled(x):
        return torch_layer_norm(x, gain, bias)
    return ops.call("layer_norm", x=x.contiguous(), gain=gain.contiguous(), bias=_contiguous(bias))


def kernel_layer_norm_backward(dy: Tensor, x: Tensor, stats: Tensor, gain: Tensor) -> tuple[Tensor, Tensor]:
    """functional.torch_layer_norm_backward in the kernel."""
    if not _compiled(dy):
        return torch_layer_norm_backward(dy, x, stats, gain)
    return ops.call(
        "layer_norm_backward",
        dy=dy.contiguous(),
        x=x.contiguous(),
        stats=stats.contiguous(),
        gain=gain.contiguous(),
    )


def prepare_step(layers: list[GateWeights]) -> list | None:
    """The step kernel's weights, a StepLayer per layer: [W_ih W_hh]^T, b_ih + b_hh, W_hr^T, the peepholes;
    None with layer norm, which the step kernel does not run."""
    if any(w.ln_weight_hh is not None for w in layers):
        return None

    def prepared(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.detach().contiguous()

    steps = []
    for w in layers:
        w_hr_t = None if w.weight_hr is None else w.weight_hr.t()
        w_cat_t = torch.cat([w.weight_ih, w.weight_hh], dim=1).t()  # (I + P, G*H)
        steps.append(
            kernel().StepLayer(
                w_cat_t=prepared(w_cat_t),
                bias=prepared(gate_bias(w)),
                w_hr_t=prepared(w_hr_t),
                w_ci=prepared(w.weight_ci),
                w_cf=prepared(w.weight_cf),
                w_co=prepared(w.weight_co),
            )
        )
    return steps


def kernel_step(x: Tensor, h: Tensor, c: Tensor, prepared, zoneout: tuple[float, float]):
    """One step of every layer in the kernel: x (B, I), h (L, B, P), c (L, B, H) -> new h, c."""
    zoneout_c, zoneout_h = zoneout
    return kernel().step(
        x=x.contiguous(),
        h=h.contiguous(),
        c=c.contiguous(),
        layers=prepared,
        zoneout_c=zoneout_c,
        zoneout_h=zoneout_h,
    )


KERNEL_OPS = BulkOps(kernel_matmul, kernel_layer_norm, kernel_layer_norm_backward)

register(
    Backend(
        "cpu",
        make_run(
            TimeLoops(
                kernel_forward, kernel_backward, KERNEL_OPS, ragged=True, projects_input=SMALL_BATCH + 1
            )
        ),
        priority=20,
        summary="the hand-BPTT loops compiled: fused gates, GEMM per step, ragged batches",
        is_available=lambda: kernel() is not None,
        ragged=True,
        step=StepPath(prepare_step, _compiled, kernel_step),
    )
)
