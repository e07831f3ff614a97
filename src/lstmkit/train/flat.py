"""A model's small parameters trained as one tensor: one optimizer update, one norm, one fill per step.

For a small model (a forecaster of 5,400 parameters in six tensors) torch's per-tensor work in AdamW,
gradient clipping and zeroing costs about as much as the LSTM's own forward and backward. ``FlatParameters``
copies every parameter of at most ``SMALL`` elements into one buffer and points the parameter's ``.data``
at its slice, and its ``.grad`` at its slice of a second buffer: the model keeps its Parameter objects,
backward accumulates into the gradient buffer in place, and the optimizer updates the buffer.

Larger parameters (an embedding table, a wide LSTM's weights) stay tensors of their own: zeroing their
gradient and accumulating into it would cost more than the per-tensor work saved.

One difference from per-tensor training: a small parameter that gets no gradient in a step (unused by
that batch) has a zero gradient rather than none, so AdamW still moves it by its momentum and decay.
"""

from __future__ import annotations

import torch
from torch import nn

SMALL = 1 << 16  # elements: a parameter of at most this many joins the flat buffer


class FlatParameters:
    """``tensors``: what the optimizer updates and the clipping measures (the flat buffer, then the large
    parameters as they are). Call ``zero_grad`` instead of the optimizer's: it keeps the buffer's views."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        small = [p for p in params if p.numel() <= SMALL]
        small = [p for p in small if (p.dtype, p.device) == (small[0].dtype, small[0].device)]  # one buffer
        self.large = [p for p in params if all(p is not q for q in small)]
        self.flat: nn.Parameter | None = None
        self.views: list[tuple[nn.Parameter, torch.Tensor]] = []  # (parameter, its slice of the gradient)
        if small:
            self.flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in small]))  # (N,)
            self.flat.grad = torch.zeros_like(self.flat)
            offset = 0
            for p in small:
                end = offset + p.numel()
                p.data = self.flat.data[offset:end].view_as(p)
                p.grad = self.flat.grad[offset:end].view_as(p)
                self.views.append((p, p.grad))
                offset = end
        self.tensors = ([self.flat] if self.flat is not None else []) + self.large

    def zero_grad(self) -> None:
        """Zeros the flat gradient and drops the large parameters'. A small parameter whose .grad was
        replaced or dropped (``model.zero_grad()``) gets its view of the flat gradient back."""
        if self.flat is not None:
            self.flat.grad.zero_()
            for p, grad in self.views:
                if p.grad is not grad:
                    p.grad = grad
        for p in self.large:
            p.grad = None
