"""GateTrace: the gate activations and states an LSTM forward really used, step by step."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass(frozen=True)
class GateTrace:
    """Gate values per layer and direction, step, sequence and unit.

    Each field is shaped (num_layers * num_directions, T, B, H) ((…, B, T, H) with batch_first; no
    batch axis for unbatched input; ``hidden`` has proj_size units when projecting). Index 2k is layer
    k forward, 2k+1 layer k backward; the time axis is always in input order. Steps past a sequence's
    length are zero. ``cell`` and ``hidden`` are the states carried to the next step (after zoneout).
    """

    input_gate: Tensor  # i_t
    forget_gate: Tensor  # f_t
    candidate: Tensor  # g_t, the "new information"
    output_gate: Tensor  # o_t
    cell: Tensor  # c_t
    hidden: Tensor  # h_t

    @classmethod
    def stack(cls, traces: list[GateTrace]) -> GateTrace:
        """Stack per-layer traces, each field (T, B, H), into one with a leading layer axis."""
        if len(traces) == 1:  # a view, not a copy
            return traces[0].map(lambda t: t.unsqueeze(0))
        return cls(*(torch.stack([getattr(t, f.name) for t in traces]) for f in fields(cls)))

    def map(self, fn) -> GateTrace:
        """Apply ``fn`` to every field."""
        return GateTrace(*(fn(getattr(self, f.name)) for f in fields(self)))

    def as_dict(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
