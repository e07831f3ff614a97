"""Argument checks shared by LSTM and LSTMCell: a ValueError that says what was expected and what came."""

from __future__ import annotations

import torch
from torch import Tensor

PLAIN = (Tensor, torch.nn.Parameter)  # any other type (FakeTensor, a subclass) goes to the custom ops


def traced(*tensors: Tensor | None) -> bool:
    """Whether these tensors are seen by a tracer, a transform or a mode (torch.compile, torch.export, fake
    or functorch tensors, jit.trace, a dispatch mode): values are then unknown, and checks on them are
    skipped; the compiled kernel is then reached through its custom ops."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch._C._len_torch_dispatch_stack():
        return True
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    return any(t is not None and (type(t) not in PLAIN or wrapped(t)) for t in tensors)


def check_like(owner: str, name: str, t: Tensor, param: Tensor, also: torch.dtype | None = None) -> None:
    """``t`` must share the parameters' dtype (or have dtype ``also``) and device."""
    if not isinstance(t, Tensor):
        raise ValueError(f"{owner}: {name} must be a tensor, got {type(t).__name__}")
    if t.dtype != param.dtype and t.dtype != also:
        raise ValueError(
            f"{owner}: {name} has dtype {t.dtype} but the parameters are {param.dtype}; "
            f"cast one to match (e.g. module.to({t.dtype}))"
        )
    if t.device != param.device:
        raise ValueError(
            f"{owner}: {name} is on {t.device} but the parameters are on {param.device}; "
            f"move one to match (e.g. module.to('{t.device}'))"
        )


def check_shape(owner: str, name: str, t: Tensor, expected: tuple[int, ...]) -> None:
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f"{owner}: expected {name} of shape {tuple(expected)}, got {tuple(t.shape)}")


def check_input(owner: str, x: Tensor, input_size: int, dims: tuple[int, int], param: Tensor) -> None:
    """x must have ``dims`` (unbatched, batched) dimensions and input_size features."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{owner}: input must be a tensor, got {type(x).__name__}")
    if x.dim() not in dims:
        raise ValueError(
            f"{owner}: expected input with {dims[0]} (unbatched) or {dims[1]} (batched) dimensions, "
            f"got {x.dim()} (shape {tuple(x.shape)})"
        )
    if torch.jit.is_tracing():  # sizes are traced values there (torch.onnx's TorchScript exporter)
        check_like(owner, "input", x, param)
        return
    if 0 in x.shape[:-1]:
        raise ValueError(
            f"{owner}: input of shape {tuple(x.shape)} is empty: "
            "it needs at least one time step and one sequence"
        )
    if x.shape[-1] != input_size:
        raise ValueError(
            f"{owner}: input.size(-1) must equal input_size: expected {input_size}, got {x.shape[-1]}"
        )
    check_like(owner, "input", x, param)


def check_lengths(owner: str, lengths, steps: int, batch: int, device: torch.device) -> Tensor:
    """lengths: one integer per sequence, each in [1, steps]. Returns them as int64 on ``device``."""
    lengths = lengths if isinstance(lengths, Tensor) else torch.as_tensor(lengths)
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise ValueError(f"{owner}: lengths must be integers, got dtype {lengths.dtype}")
    if not torch.jit.is_tracing() and tuple(lengths.shape) != (batch,):  # traced sizes are not ints
        raise ValueError(
            f"{owner}: lengths must hold one length per sequence: expected shape ({batch},), "
            f"got {tuple(lengths.shape)}"
        )
    if traced(lengths):  # the values are not known while tracing
        return lengths.to(device=device, dtype=torch.long)
    low, high = int(lengths.min()), int(lengths.max())
    if low < 1:
        raise ValueError(f"{owner}: lengths must be positive, got {low}")
    if high > steps:
        raise ValueError(f"{owner}: lengths must be at most the number of steps T={steps}, got {high}")
    return lengths.to(device=device, dtype=torch.long)
