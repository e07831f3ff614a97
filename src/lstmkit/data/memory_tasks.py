"""The long-time-lag tasks of Hochreiter & Schmidhuber (1997), as seeded generators of fresh batches.

Each task's ``generate(length, batch, generator)`` returns x (steps, B, I) float32 and y (R, B): the targets
of the last R steps (float sums for the adding problem, class indices for the others). The same
``torch.Generator`` state gives the same batch. The ``*_sequence`` functions assemble a batch from given
draws, so that tests can check them against cases worked out by hand.

- adding: T pairs (value uniform in [0, 1], marker); the marker is 1 at one step of the first half and one
  of the second half, 0 elsewhere; the target is the sum of the two marked values (Le et al. 2015's form
  of the 1997 task, which used values in [-1, 1] and the target 0.5 + (x1 + x2) / 4). Always answering 1.0
  scores Var(x1 + x2) = 1/12 + 1/12 = 1/6 = 0.167; solved below 0.01.
- copy: K symbols from an alphabet of A, a blank gap of T steps, then K recall steps at which the model
  must output the K symbols in order. Guessing scores a symbol error rate of 1 - 1/A.
- temporal-order (1997, experiment 6a): T symbols, B first and E last, distractors a-d elsewhere except
  X or Y at one step t1 in [T/10, T/5] and one t2 in [T/2, 6T/10]; the class is the order XX, XY, YX
  or YY (1997: T from 100 to 110, t1 in [10, 20], t2 in [50, 60]). Guessing scores an error rate of 3/4.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

COPY_ALPHABET = 8  # symbols 0..7; 8 is blank, 9 is the recall marker
COPY_STRING = 5  # symbols to remember
BLANK, RECALL = COPY_ALPHABET, COPY_ALPHABET + 1
TEMPORAL_SYMBOLS = "abcdXYBE"  # input codes 0..7: distractors a-d, the relevant X and Y, begin and end
X_CODE, BEGIN, END = 4, 6, 7


def adding_sequence(values: Tensor, first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    """values (T, B); first, second (B,) the marked steps -> x (T, B, 2) = (value, marker), y (1, B)."""
    columns = torch.arange(values.shape[1])
    marker = torch.zeros_like(values)
    marker[first, columns] = 1.0
    marker[second, columns] = 1.0
    target = values[first, columns] + values[second, columns]  # (B,)
    return torch.stack([values, marker], dim=-1), target[None]


def adding_batch(length: int, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    values = torch.rand(length, batch, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, length, (batch,), generator=generator)
    return adding_sequence(values, first, second)


def copy_sequence(strings: Tensor, gap: int) -> tuple[Tensor, Tensor]:
    """strings (K, B) symbols -> x (K + gap + K, B, A + 2) one-hot, y (K, B) = strings."""
    k, batch = strings.shape
    codes = torch.cat(
        [strings, torch.full((gap, batch), BLANK), torch.full((k, batch), RECALL)]
    )  # (K + gap + K, B)
    return F.one_hot(codes, COPY_ALPHABET + 2).float(), strings.clone()


def copy_batch(length: int, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    strings = torch.randint(0, COPY_ALPHABET, (COPY_STRING, batch), generator=generator)
    return copy_sequence(strings, length)


def temporal_order_positions(length: int) -> tuple[int, int, int, int]:
    """The ranges [lo1, hi1] of t1 and [lo2, hi2] of t2 (inclusive) for sequences of ``length`` >= 4."""
    return max(1, length // 10), max(1, length // 5), length // 2, max(length // 2, 6 * length // 10)


def temporal_order_sequence(
    distractors: Tensor, t1: Tensor, t2: Tensor, first_y: Tensor, second_y: Tensor
) -> tuple[Tensor, Tensor]:
    """distractors (T, B) codes 0-3; t1, t2 (B,) steps; first_y, second_y (B,) 1 for Y, 0 for X
    -> x (T, B, 8) one-hot, y (1, B) class 2 * first_y + second_y (XX 0, XY 1, YX 2, YY 3)."""
    columns = torch.arange(distractors.shape[1])
    codes = distractors.clone()
    codes[0], codes[-1] = BEGIN, END
    codes[t1, columns] = X_CODE + first_y
    codes[t2, columns] = X_CODE + second_y
    return F.one_hot(codes, len(TEMPORAL_SYMBOLS)).float(), (2 * first_y + second_y)[None]


def temporal_order_batch(length: int, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    lo1, hi1, lo2, hi2 = temporal_order_positions(length)
    distractors = torch.randint(0, 4, (length, batch), generator=generator)
    t1 = torch.randint(lo1, hi1 + 1, (batch,), generator=generator)
    t2 = torch.randint(lo2, hi2 + 1, (batch,), generator=generator)
    first_y, second_y = torch.randint(0, 2, (2, batch), generator=generator)
    return temporal_order_sequence(distractors, t1, t2, first_y, second_y)


@dataclass(frozen=True)
class MemoryTask:
    """A task and how it is scored."""

    name: str
    generate: Callable[[int, int, torch.Generator], tuple[Tensor, Tensor]]
    input_size: int
    outputs: int  # 1 for the regression, else the number of classes
    readout: int  # R: the model's outputs at the last R steps are scored
    min_length: int
    error_name: str
    solved_below: float  # the task is solved when the test error is below this
    baseline: float  # the error of the best answer that ignores the inputs
    baseline_name: str
    length_means: str  # what T is, for labels

    @property
    def regression(self) -> bool:
        return self.outputs == 1

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """output (R, B, C), target (R, B) -> the mean training loss (MSE or cross-entropy)."""
        if self.regression:
            return F.mse_loss(output.squeeze(-1), target)
        return F.cross_entropy(output.reshape(-1, self.outputs), target.reshape(-1))

    def error(self, output: Tensor, target: Tensor) -> float:
        """The test error: MSE, or the fraction of wrong answers."""
        if self.regression:
            return F.mse_loss(output.squeeze(-1), target).item()
        wrong = output.argmax(-1) != target
        return wrong.sum().item() / wrong.numel()  # exact: 50 of 5000 is 0.01, not float32's 0.0099999998


TASKS = {
    "adding": MemoryTask(
        "adding", adding_batch, 2, 1, 1, 2, "MSE", 0.01, 1 / 6, "always 1.0", "sequence length T"
    ),
    "copy": MemoryTask(
        "copy",
        copy_batch,
        COPY_ALPHABET + 2,
        COPY_ALPHABET,
        COPY_STRING,
        1,
        "symbol error rate",
        0.01,
        1 - 1 / COPY_ALPHABET,
        "guessing",
        "blank gap T",
    ),
    "temporal-order": MemoryTask(
        "temporal-order",
        temporal_order_batch,
        len(TEMPORAL_SYMBOLS),
        4,
        1,
        4,
        "error rate",
        0.01,
        0.75,
        "guessing",
        "sequence length T",
    ),
}
