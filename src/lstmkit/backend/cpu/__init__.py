"""The "cpu" backend: the hand-BPTT time loops compiled from the C++ files beside this one (the shape contract
in ``lstm_cpu.h``, which lists them), built on first use and cached.

torch.utils.cpp_extension builds it with ninja and the system C++ compiler into torch's extension cache
(~/.cache/torch_extensions, or $TORCH_EXTENSIONS_DIR), tuned for this machine's CPU; ``lstmkit build``
builds it ahead of time. Where it cannot be built, the backend is not available and "auto" falls back to
"bptt" with one warning.

Types: float32 and float64 run in their own type. bf16 weights run the bf16 loops where the CPU has bf16
products (AVX512-BF16 or AMX, found at run time): bf16 operands into every product, accumulated in float32,
the gates and the cell state c_t in float32 (``bf16_loops``). Elsewhere, or with an odd size, bf16 runs the
float32 loops on float32 copies, which is as accurate and slower. Other types run the loops in Python.
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
# NaN into the edge of its range), the rest of fast-math (reassociation, no errno) stays. On x86, the gate
# rows in 512-bit vectors where the CPU has AVX-512 (GCC prefers 256 bits there; no effect without it).
CFLAGS = ["-O3", "-march=native", "-ffast-math", "-fno-finite-math-only", "-fopenmp"]
if platform.machine() in ("x86_64", "AMD64"):
    CFLAGS.insert(2, "-mprefer-vector-width=512")


def cpu_flags() -> list[str]:
    """The instruction sets /proc/cpuinfo lists for this CPU (none where there is no such file)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return []
    line = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
    return line.partition(":")[2].split()


def _build_name() -> str:
    """A name per source and header, flags, torch version and CPU: an edit to any kernel file rebuilds, and a
    cached build is never run on the wrong CPU."""
    texts = [f"{path.name}\n{path.read_text()}" for path in KERNEL_FILES]
    key = "|".join([*texts, " ".join(CFLAGS), torch.__version__, platform.machine(), " ".join(cpu_flags())])
    return "lstmkit_cpu_" + hashlib.sha256(key.encode()).hexdigest()[:12]


_KERNEL: list = []  # [the module, or None where it cannot be built], once tried
_BF16_PRODUCTS: list = []  # [whether the module multiplies bf16 operands here], once asked


def kernel():
    """The compiled module, built the first time (10-20 seconds) and loaded from the cache after; None
    (with one warning) when it cannot be built here, or when its per-step fields disagree with Python's.
    After the first call, a list lookup that torch.compile traces as a constant (LSTM's constructor makes
    that first call, outside any compiled region)."""
    if not _KERNEL:
        _KERNEL.append(_build())
    return _KERNEL[0]


def _clear() -> None:
    _KERNEL.clear()
    _BF16_PRODUCTS.clear()


kernel.cache_clear = _clear  # as functools.cache's: the next call tries again


def bf16_loops() -> bool:
    """Whether bf16 weights run the kernel's bf16 loops here: the kernel is built and the CPU has bf16
    products (AVX512-BF16 or AMX tiles). A list lookup after the first call, as ``kernel``."""
    if not _BF16_PRODUCTS:
        _BF16_PRODUCTS.append(kernel() is not None and bool(kernel().bf16_products()))
    return _BF16_PRODUCTS[0]


def loop_kind(w: GateWeights, x: Tensor) -> str | None:
    """How the kernel runs a layer with these weights on x: "native" (float32 or float64 throughout),
    "bf16" (the bf16 loops), "upcast" (bf16 weights on float32 copies: no bf16 products here, or a size the
    bf16 products cannot pair), or None (not the kernel's: the loops in Python)."""
    if x.device.type != "cpu" or kernel() is None:
        return None
    dtype = w.weight_hh.dtype
    if dtype in (torch.float32, torch.float64):
        return "native" if x.dtype == dtype else None
    if dtype != torch.bfloat16:
        return None
    sizes = [*w.weight_hh.shape, *(() if w.weight_hr is None else w.weight_hr.shape)]  # G*H, P, H
    return "bf16" if bf16_loops() and all(size % 2 == 0 for size in sizes) else "upcast"


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


def _bf16_compiled(x: Tensor) -> bool:
    """Whether the kernel's bf16 loops take this tensor: bf16 on the CPU, where they run (``bf16_loops``)."""
    return x.dtype == torch.bfloat16 and x.device.type == "cpu" and bf16_loops()


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


def _float32(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.float()


def autocast_weights(w: GateWeights, x: Tensor) -> GateWeights:
    """Float32 weights beside a bf16 x (torch.autocast) in bf16, all of them, as torch.autocast casts them;
    other weights as they are (see bptt.TimeLoops.casts)."""
    if w.weight_hh.dtype == torch.float32 and x.dtype == torch.bfloat16:
        return GateWeights(*(t if t is None else t.to(torch.bfloat16) for t in w))
    return w


def loop_weights(w: GateWeights, kind: str) -> GateWeights:
    """The weights as a loop of this kind takes them: bf16 loops, the products' weights (W_ih, W_hh, W_hr)
    in bf16 and the rest in float32; upcast, all in float32; native, as they are."""
    if kind == "native":
        return w
    products = torch.bfloat16 if kind == "bf16" else torch.float32
    gemm = ("weight_ih", "weight_hh", "weight_hr")
    return GateWeights(
        *(
            t if t is None else t.to(products if name in gemm else torch.float32)
            for name, t in zip(GateWeights._fields, w)
        )
    )


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


def _l2_cache_bytes() -> int:
    """One core's L2 cache in bytes, from Linux's sysfs; 1 MiB where it does not say."""
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "level").read_text().strip() == "2":
                size = (index / "size").read_text().strip()  # "2048K"
                scale = {"K": 1024, "M": 1024**2}.get(size[-1:], 1)
                return int(size.rstrip("KM")) * scale
        except (OSError, ValueError):
            break
    return 1024**2


L2_CACHE_BYTES = _l2_cache_bytes()
BATCH_STREAMING_WEIGHTS = 32  # from this batch a step's product runs at full speed on weights from memory


def projects_per_step(x: Tensor, w: GateWeights) -> bool:
    """Whether the forward loop multiplies each step's x_t by W_ih itself, next to h by W_hh (see
    bptt.TimeLoops): from SMALL_BATCH + 1 sequences, where both weights together fit in half of each
    thread's L2 cache, or from BATCH_STREAMING_WEIGHTS sequences. Otherwise (fewer sequences, large
    weights) each step would stream W_ih from memory again: one product over all steps streams it once
    (measured on 50 steps of 8 x 512 units: 1.3x faster so, in float32 and bf16; of 16 x 512, 1.14x)."""
    batch = x.shape[1]
    if batch <= SMALL_BATCH:
        return False
    kind = loop_kind(w, x)
    size = 2 if kind == "bf16" else 4 if kind == "upcast" else w.weight_hh.element_size()
    weight_bytes = (w.weight_ih.numel() + w.weight_hh.numel()) * size
    return batch >= BATCH_STREAMING_WEIGHTS or weight_bytes / torch.get_num_threads() <= L2_CACHE_BYTES / 2


def kernel_forward(
    x_gates, h0, c0, w: GateWeights, mask, keep_c, keep_h, record: bool, batch_sizes=None, project=False
):
    """See bptt.TimeLoops: with ``project``, x_gates is x (T, B, I) and each step projects its own x_t.
    bf16 weights (see ``loop_kind``): output and h_T in h0's type, c_T in c0's, the cache in float32 but for
    h_in and m, which are the products' bf16 operands (float32 too on float32 copies)."""
    kind = loop_kind(w, h0)  # (h0 has the input's type: x_gates may be its float32 projection)
    if kind is None:
        if project:
            x_gates, _, _ = input_projection(x_gates, w)
        keep_c = _padding_keep(keep_c, batch_sizes, c0.shape[-1], x_gates)
        keep_h = _padding_keep(keep_h, batch_sizes, h0.shape[-1], x_gates)
        return PYTHON_LOOPS.forward(x_gates, h0, c0, w, mask, keep_c, keep_h, record)
    h_type, c_type = h0.dtype, c0.dtype
    if kind != "native":  # the operands in the loop's types, all else float32
        if project and kind == "bf16" and x_gates.shape[-1] % 2:  # (an odd I cannot pair per step)
            x_gates, _, _ = input_projection(x_gates, w, KERNEL_OPS)
            project = False
        w = loop_weights(w, kind)
        operands = w.weight_hh.dtype
        x_gates = x_gates.to(operands if project else torch.float32)
        h0, c0 = h0.to(operands), c0.float()
        mask, keep_c, keep_h = _float32(mask), _float32(keep_c), _float32(keep_h)
    w_ih = bias = None
    if project:
        w_ih, bias = w.weight_ih, gate_bias(w)
    output, h, c, s = ops.run_forward(
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
    return output.to(h_type), h.to(h_type), c.to(c_type), s


def kernel_backward(d_output, dh, dc, s: StepCache, w: GateWeights, mask, keep_c, keep_h, batch_sizes=None):
    """See bptt.TimeLoops; bf16 weights as in ``kernel_forward`` (da, dhh and dh_new in bf16 in the bf16
    loops, dh_0 and dc_0 in float32)."""
    kind = loop_kind(w, d_output)
    if kind is None:
        keep_c = _padding_keep(keep_c, batch_sizes, dc.shape[-1], d_output)
        keep_h = _padding_keep(keep_h, batch_sizes, dh.shape[-1], d_output)
        return PYTHON_LOOPS.backward(d_output, dh, dc, s, w, mask, keep_c, keep_h)
    if kind != "native":
        w = loop_weights(w, kind)
        d_output, dh, dc = d_output.float(), dh.float(), dc.float()
        mask, keep_c, keep_h = _float32(mask), _float32(keep_c), _float32(keep_h)
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
    product: torch's. bf16 operands, where the bf16 loops run, give a float32 product (accumulated in
    float32); a float32 operand beside a bf16 one (the gradients through the input's layer norm) joins it
    in bf16 there, and elsewhere both run in float32."""
    if a.dtype != b.dtype:
        joint = torch.bfloat16 if _bf16_compiled(a) or _bf16_compiled(b) else torch.float32
        a, b = a.to(joint), b.to(joint)
    if _bf16_compiled(a):
        bias = _float32(bias)
        if not traced(a) and a.shape[0] < PACKED_ROWS:
            product = torch_matmul(a, b).float()
            return product if bias is None else product + bias
    elif not (_compiled(a) and a.dtype == torch.float32):
        return torch_matmul(a, b, bias)
    if not traced(a) and a.shape[0] < PACKED_ROWS:  # (a traced size is symbolic: no branch on it)
        return torch_matmul(a, b, bias)
    if bias is None and not a.is_contiguous() and a.t().is_contiguous():
        return ops.call("matmul_tn", a=a.t(), b=b)
    return ops.call("matmul", a=a.contiguous(), b=b, bias=_contiguous(bias))


def kernel_layer_norm(x: Tensor, gain: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
    """functional.torch_layer_norm in the kernel (its buffers reused between calls)."""
    gain, bias = gain.to(x.dtype), None if bias is None else bias.to(x.dtype)  # (bf16 weights, float32 x)
    if not _compiled(x):
        return torch_layer_norm(x, gain, bias)
    return ops.call("layer_norm", x=x.contiguous(), gain=gain.contiguous(), bias=_contiguous(bias))


def kernel_layer_norm_backward(dy: Tensor, x: Tensor, stats: Tensor, gain: Tensor) -> tuple[Tensor, Tensor]:
    """functional.torch_layer_norm_backward in the kernel. bf16 gradients (the bf16 loops' da) are taken in
    x's float32 and dx given back in bf16, once, for the products it feeds."""
    given = dy.dtype
    dy, gain = dy.to(x.dtype), gain.to(x.dtype)
    if not _compiled(dy):
        dx, dgain = torch_layer_norm_backward(dy, x, stats, gain)
    else:
        dx, dgain = ops.call(
            "layer_norm_backward",
            dy=dy.contiguous(),
            x=x.contiguous(),
            stats=stats.contiguous(),
            gain=gain.contiguous(),
        )
    return dx.to(given), dgain


def vnni_pairs(t: Tensor) -> Tensor:
    """A bf16 matrix (K, N), K even, in the VNNI layout of the bf16 products: (K/2, N, 2), rows k and k+1 of
    each column side by side."""
    rows, columns = t.shape
    return t.reshape(rows // 2, 2, columns).transpose(1, 2).contiguous()


def prepare_step(layers: list[GateWeights]) -> list | None:
    """The step kernel's weights, a StepLayer per layer; None with layer norm, which the step kernel does
    not run. The weights themselves, which the kernel reads as they lie at one or two rows (a write to them
    is seen at the next step). bf16 (where the bf16 loops run and I + P and H are even, else None: the
    sequence path runs the step) adds [W_ih W_hh]^T and W_hr^T copied into VNNI pairs for more rows."""
    if any(w.ln_weight_hh is not None for w in layers):
        return None
    bf16 = layers[0].weight_hh.dtype == torch.bfloat16
    if bf16 and any(loop_kind(w, w.weight_hh) != "bf16" or w.weight_ih.shape[1] % 2 for w in layers):
        return None

    def own(t: Tensor | None) -> Tensor | None:  # the parameter as it is
        return None if t is None else t.detach().contiguous()

    steps = []
    for w in layers:
        copies = {}
        if bf16:
            copies = {
                "w_cat_vnni": vnni_pairs(torch.cat([w.weight_ih, w.weight_hh], dim=1).t().detach()),
                "w_hr_vnni": None if w.weight_hr is None else vnni_pairs(w.weight_hr.t().detach()),
            }
        steps.append(
            kernel().StepLayer(
                w_ih=own(w.weight_ih),
                w_hh=own(w.weight_hh),
                w_hr=own(w.weight_hr),
                **copies,
                bias_ih=own(w.bias_ih),
                bias_hh=own(w.bias_hh),
                w_ci=own(w.weight_ci),
                w_cf=own(w.weight_cf),
                w_co=own(w.weight_co),
            )
        )
    return steps


def takes_step(x: Tensor) -> bool:
    """Whether the step kernel takes x: float32 or float64 on the CPU, or bf16 where the bf16 loops run."""
    return _compiled(x) or _bf16_compiled(x)


def kernel_step(x: Tensor, h: Tensor, c: Tensor, prepared, zoneout: tuple[float, float]):
    """One step of every layer in the kernel: x (B, I), h (L, B, P), c (L, B, H) -> new h, c (bf16 x: c in
    float32, see lstmkit.backend.registry)."""
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
                kernel_forward,
                kernel_backward,
                KERNEL_OPS,
                ragged=True,
                projects_input=projects_per_step,
                casts=autocast_weights,
            )
        ),
        priority=20,
        summary="the hand-BPTT loops compiled: fused gates, GEMM per step, ragged batches",
        is_available=lambda: kernel() is not None,
        ragged=True,
        step=StepPath(prepare_step, takes_step, kernel_step),
        casts_weights=lambda x: x.device.type == "cpu",
    )
)
