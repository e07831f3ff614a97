"""Random keep masks for dropout, recurrent dropout and zoneout, several times faster on the CPU than torch's.

On the CPU, torch.bernoulli and F.dropout draw one number from the Mersenne twister per element (about
7 ns each here: for a batch of word vectors, as long as the LSTM's own step). ``bernoulli_mask`` takes
16 bits per element from 64-bit draws of torch's generator, four elements per draw, and compares them
with the probability; the probability is thereby rounded to a multiple of 1/65536, and ``dropout`` scales
by the rounded one, so that the expected output is still exactly the input. Seeding torch seeds these
masks. Other devices use torch's own.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RESOLUTION = 1 << 16  # probabilities are multiples of 1 / RESOLUTION


def rounded(p: float) -> float:
    """The probability ``bernoulli_mask`` realises for ``p``."""
    return round(p * RESOLUTION) / RESOLUTION


def bernoulli_mask(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """0 or 1 in like's dtype and on its device, 1 with probability ``rounded(p)``, independently."""
    if like.device.type != "cpu":
        return torch.bernoulli(like.new_full(shape, p))
    count = math.prod(shape)
    words = torch.randint(-(2**63), 2**63 - 1, ((count + 3) // 4,), dtype=torch.int64)
    bits = words.view(torch.int16)[:count].view(shape)  # uniform on [-32768, 32767]
    return (bits < round(p * RESOLUTION) - RESOLUTION // 2).to(like.dtype)


def dropout_mask(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """Dropout's factors: 0 with probability p, else 1 / (1 - p) (p as rounded)."""
    keep = rounded(1 - p)
    if keep == 0:
        return like.new_zeros(shape)
    return bernoulli_mask(shape, 1 - p, like) * (1 / keep)


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """F.dropout: each element zeroed with probability p, the others scaled by 1 / (1 - p)."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    return x * dropout_mask(tuple(x.shape), p, x)


class Dropout(nn.Dropout):
    """nn.Dropout through ``dropout``."""

    def forward(self, input: Tensor) -> Tensor:
        return dropout(input, self.p, self.training)
