"""The global batch under DDP: gathering embeddings with gradients, and seeded batch sampling.

Negatives must come from the batch of every process together. Each process gathers the
embeddings of all processes with :func:`gather_batch` (an all-gather whose backward sums the
gradients of every process and hands each process those of its own rows) and computes the
loss rows of its own locations against every view. DDP then averages parameter gradients
over processes, which gives exactly the gradient of the mean loss over the global batch, as
one process with the whole batch would have.

:class:`GlobalBatchSampler` draws seeded global batches and gives each process its contiguous
share: process ``r`` of ``W`` gets locations ``[r * B, (r + 1) * B)`` of each global batch of
``W * B``, so two processes with ``B`` see what one process with ``2 * B`` sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import Sampler

from geoalign.errors import InvalidInputError


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 outside distributed runs)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGradients(torch.autograd.Function):
    """All-gather along the batch axis whose backward returns each process its rows' gradient.

    Every process computes a loss from the gathered tensor; the gradient of the sum of those
    losses with respect to this process's rows is the all-reduced (summed) gradient of the
    gathered tensor, sliced to those rows.
    """

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        rank, world = rank_and_world()
        ctx.rows = (rank * tensor.shape[0], (rank + 1) * tensor.shape[0])
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> Tensor:
        grad = grads[0].contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rows[0] : ctx.rows[1]]


def gather_batch(tensor: Tensor) -> Tensor:
    """Concatenate ``[N, ...]`` from every process into ``[W * N, ...]``, keeping gradients.

    Rows of process ``r`` are ``[r * N, (r + 1) * N)``. Every process must give the same shape.
    Returns ``tensor`` itself outside distributed runs. Boolean tensors (flags) are gathered
    as bytes.
    """
    _, world = rank_and_world()
    if world == 1:
        return tensor
    if tensor.dtype == torch.bool:
        return gather_batch(tensor.to(torch.uint8)).bool()
    if not tensor.requires_grad:
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)
    gathered: Tensor = _GatherWithGradients.apply(tensor)
    return gathered


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator that depends only on ``(seed, epoch)``: the same after a resume."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))


class GlobalBatchSampler(Sampler[int]):
    """Indexes of this process's share of seeded global batches (use with ``batch_size``).

    Args:
        size: Number of samples.
        batch_size: Samples per batch and process ``B``.
        rank: This process ``r``.
        world_size: Number of processes ``W``.
        shuffle: A new permutation each epoch (seeded by ``seed`` and the epoch).
        seed: Seed of the permutations.
        drop_last: Drop the last incomplete global batch (needed for training under DDP, where
            every process must gather the same number of embeddings).
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise InvalidInputError(
                f"batch_size={batch_size}, rank={rank}, world_size={world_size}: need "
                "batch_size >= 1 and 0 <= rank < world_size"
            )
        if drop_last and size < batch_size * world_size:
            raise InvalidInputError(
                f"{size} samples do not fill one global batch of {batch_size} x {world_size} "
                "processes: lower the batch size"
            )
        self.size = size
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch`` (Lightning calls this at every epoch start)."""
        self.epoch = epoch

    def _global(self) -> int:
        return self.batch_size * self.world_size

    def __iter__(self) -> Iterator[int]:
        """This process's indexes, batch after batch."""
        if self.shuffle:
            order = torch.randperm(self.size, generator=epoch_generator(self.seed, self.epoch))
        else:
            order = torch.arange(self.size)
        step = self._global()
        stop = (self.size // step) * step if self.drop_last else self.size
        for start in range(0, stop, step):
            chunk = order[start : min(start + step, stop)]
            share = -(-len(chunk) // self.world_size)
            yield from chunk[self.rank * share : (self.rank + 1) * share].tolist()

    def __len__(self) -> int:
        step = self._global()
        if self.drop_last:
            return (self.size // step) * self.batch_size
        return sum(1 for _ in self)
