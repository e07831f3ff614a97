"""The backend registry. A backend runs one layer and direction of the recurrence over a whole sequence.

Contract of ``Backend.run(x, h0, c0, w, recurrent_mask, keep_c, keep_h, want_trace) -> LayerResult``:
    x: (T, B, I); h0: (B, P); c0: (B, H); w: GateWeights; recurrent_mask: (B, P) or None;
    keep_c: (T, B, H) or None; keep_h: (T, B, P) or None (see lstmkit.functional).
    Returns output (T, B, P) = h_1..h_T, h_T, c_T and, with want_trace, a GateTrace of (T, B, H) fields.
A ``ragged`` backend also takes ``batch_sizes=`` (T,) int64 for a batch sorted by length, longest first:
step t runs the first batch_sizes[t] rows, later rows keep their state, outputs past a row's end are 0
and h_T, c_T are each row's state at its last step (padding without keep factors).
It must be differentiable with respect to x, h0, c0 and every weight, and equal the reference backend.

A backend with a ``step`` (a ``StepPath``, else None) also runs one time step of every layer at once, for
streaming inference: ``LSTM.step`` (and a one-step call of the module) takes it when no gradient is
needed, nothing random is drawn, no tracer looks, ``step.takes(x)`` and ``step.prepare`` gives weights for
its layers, and otherwise runs ``run`` on a one-step sequence.
    prepare(layers: list[GateWeights], one per layer) -> prepared, or None where the path cannot run these
        layers (a variant it lacks); the layer keeps it until a parameter changes.
    takes(x) -> bool: whether the path runs this input (its device and dtype).
    run(x (B, I), h (L, B, P), c (L, B, H), prepared, zoneouts (zoneout_c, zoneout_h)) -> the new h, c:
        zoneout as its expectation (as in eval()), equal to the backend's ``run`` over that one step. c is
        in x's dtype, and in float32 for bf16 x (``LSTM.step`` keeps a bf16 cell in float32).
Optional backends register only when they import (or build) on this machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor

from lstmkit.functional import GateWeights
from lstmkit.trace import GateTrace


class StepPath(NamedTuple):
    """A backend's one-step path through all layers (see above)."""

    prepare: Callable[[list[GateWeights]], object | None]
    takes: Callable[[Tensor], bool]
    run: Callable[[Tensor, Tensor, Tensor, object, tuple[float, float]], tuple[Tensor, Tensor]]


class LayerResult(NamedTuple):
    output: Tensor  # (T, B, P)
    h_n: Tensor  # (B, P)
    c_n: Tensor  # (B, H)
    trace: GateTrace | None


@dataclass(frozen=True)
class Backend:
    name: str
    run: Callable[..., LayerResult]
    priority: int  # "auto" picks the available backend with the highest priority
    summary: str
    is_available: Callable[[], bool] = lambda: True  # optional backends check (or build) on first call
    ragged: bool = False  # run takes batch_sizes= (see above)
    step: StepPath | None = None  # one step through all layers, for streaming (see above)
    # casts_weights(x): run takes float32 weights beside this bf16 input (torch.autocast) and casts them
    # itself, once per call: their gradients come back in float32, as summed; else the layer casts them
    casts_weights: Callable[[Tensor], bool] = lambda x: False


_REGISTRY: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    _REGISTRY[backend.name] = backend


def ragged_arguments(batch_sizes: Tensor | None) -> dict:
    """The extra keyword of a ragged batch for ``Backend.run``; none for a full one."""
    return {} if batch_sizes is None else {"batch_sizes": batch_sizes}


def available() -> list[str]:
    """Names of the backends usable here, best first."""
    ranked = sorted(_REGISTRY.values(), key=lambda b: -b.priority)
    return [b.name for b in ranked if b.is_available()]


def resolve(name: str) -> Backend:
    """The backend called ``name``; "auto" is the best available."""
    if name == "auto":
        return _REGISTRY[available()[0]]
    if name not in _REGISTRY or not _REGISTRY[name].is_available():
        known = "unknown" if name not in _REGISTRY else "unavailable"
        raise ValueError(f"{known} backend {name!r}; available: 'auto', {', '.join(map(repr, available()))}")
    return _REGISTRY[name]
