"""Data-parallel training under torchrun: the process group, ranks, DDP, batch shards and reductions.

``torchrun --nproc_per_node=N -m lstmkit TASK train ...`` starts N copies of the command and sets RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; ``init`` joins them into one process group (gloo for
CPU tensors, NCCL for CUDA ones). Without those variables every function here is the one-process identity.

Every training batch is split by items: rank r of W takes items r, r + W, r + 2W, ... (rows of a BPTT
batch), so ``--batch-size`` is the global batch and W processes take the same steps as one, up to float
rounding. DDP averages the gradients over the ranks; ``shard`` says how much of the batch each rank holds
so that the average is that of the whole batch even when the shards differ in size.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

_joined = False  # whether ``init`` made the process group (and ``finish`` should end it)


def init() -> None:
    """Join the process group torchrun describes in the environment; nothing without torchrun, or when
    the caller has made a process group already."""
    global _joined
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "cpu:gloo,cuda:nccl"  # each collective goes where its tensors are
    dist.init_process_group(backend)
    _joined = True


def finish() -> None:
    """Leave the process group that ``init`` joined."""
    global _joined
    if _joined and dist.is_initialized():
        dist.destroy_process_group()
    _joined = False


@contextlib.contextmanager
def quiet_unless_main() -> Iterator[None]:
    """Standard output goes to /dev/null in ranks other than 0 (one report, not one per process)."""
    if is_main():
        yield
        return
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """True in the process that writes files and prints: rank 0, or the only process."""
    return rank() == 0


class DataParallel(DistributedDataParallel):
    """DDP whose unknown attributes are the wrapped model's (a job may call ``self.model.loss``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(model: nn.Module) -> nn.Module | None:
    """The model in DDP (its weights broadcast from rank 0), or None in a one-process run."""
    if world_size() < 2:
        return None
    device = next(model.parameters()).device
    return DataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def shard(batch: Any) -> tuple[Any, float]:
    """This rank's part of a batch and the fraction of the batch's items it holds.

    A batch is a tensor or a list of items (split along the first dimension), or a tuple of them split
    alike (inputs and targets). A rank left without items (a batch smaller than the world) takes the first
    item with share 0, so that it still joins the gradient reduction.
    """
    size = world_size()
    if size < 2:
        return batch, 1.0
    total = len(batch[0] if isinstance(batch, tuple) else batch)

    def part(whole: Sequence | torch.Tensor) -> Sequence | torch.Tensor:
        mine = whole[rank() :: size]
        return mine if len(mine) else whole[:1]

    mine = len(range(rank(), total, size))
    return (tuple(map(part, batch)) if isinstance(batch, tuple) else part(batch)), mine / total


def items(sequence: Sequence) -> Sequence:
    """This rank's items of a sequence (for validation): items r, r + W, ...; all of them in one process."""
    return sequence[rank() :: world_size()]


def sum_over_ranks(values: Sequence[float]) -> list[float]:
    """Each value summed over the ranks (float64)."""
    if world_size() < 2:
        return list(values)
    total = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(total)
    return total.tolist()


def weighted_mean(value: float, weight: float) -> float:
    """The mean of every rank's VALUE weighted by its WEIGHT (a count of items; 0 ignores the value)."""
    total, weights = sum_over_ranks([value * weight if weight else 0.0, weight])
    return total / weights if weights else float("nan")


def gather(value: Any) -> list[Any]:
    """Every rank's VALUE, in rank order (any picklable object; used for random states)."""
    if world_size() < 2:
        return [value]
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def from_main(value: Any) -> Any:
    """Rank 0's VALUE on every rank."""
    if world_size() < 2:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
