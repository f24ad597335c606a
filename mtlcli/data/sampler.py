"""Mixed-task batches as index tensors into a :class:`~mtlcli.data.base.MixedTensors` table.

An epoch's order is a pure function of ``(seed, epoch)``: a ``torch.randperm`` from a
generator seeded with ``seed * 1_000_003 + epoch``. Global batch ``s`` of an epoch is
rows ``[s * batch_size, (s + 1) * batch_size)`` of that order, so resuming needs only
the epoch and the step (``batches(epoch, start=step)``).

Distributed: all ranks use the same seed and so the same order. Each global batch
is cut into ``world_size`` contiguous pieces with ``torch.tensor_split`` (sizes
differ by at most one row; rank r takes piece r). The union over ranks of one step's
pieces is exactly the single-process batch of that step, and no row is shared.
When a batch has fewer rows than ranks (a short last batch), some ranks get an
empty piece; ``drop_last=True`` avoids short batches altogether.

The order is always drawn on the CPU (so it is the same whatever the device) and
then moved once per epoch to ``device``, where the batches' index tensors live: a
table on the GPU is indexed with ``index_select`` without a host copy per batch.
"""

from __future__ import annotations

from typing import Iterator

import torch


class MixedBatchSampler:
    """Yields this rank's LongTensor of row indices for each step of an epoch.

    Args:
        num_samples: rows in the table being sampled.
        batch_size: rows in one global batch (summed over all ranks).
        seed: seed shared by all ranks; with the epoch it fixes the order.
        shuffle: draw a fresh seeded order each epoch; otherwise rows in order.
        drop_last: skip the last batch when it is shorter than ``batch_size``.
        rank: this process's rank, 0..world_size-1.
        world_size: number of processes sharing each global batch.
        device: where the yielded index tensors live (that of the indexed table); CPU by default.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str | None = None,
    ):
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..world_size-1 (world_size={world_size})")
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order ``iter(sampler)`` follows."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Steps (global batches) per epoch."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def order(self, epoch: int) -> torch.Tensor:
        """The epoch's row order (on ``device``), identical on every rank."""
        if not self.shuffle:
            return torch.arange(self.num_samples, device=self.device)
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % (2**63))
        return torch.randperm(self.num_samples, generator=generator).to(self.device)

    def global_batch(self, order: torch.Tensor, step: int) -> torch.Tensor:
        """All ranks' rows of one step, given the epoch's ``order``."""
        return order[step * self.batch_size : (step + 1) * self.batch_size]

    def batches(self, epoch: int, start: int = 0) -> Iterator[torch.Tensor]:
        """This rank's rows for steps ``start, start+1, ...`` of ``epoch``."""
        order = self.order(epoch)
        for step in range(start, len(self)):
            batch = self.global_batch(order, step)
            yield batch if self.world_size == 1 else batch.tensor_split(self.world_size)[self.rank]

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.batches(self.epoch)

    def __repr__(self) -> str:
        return (
            f"MixedBatchSampler(num_samples={self.num_samples}, batch_size={self.batch_size}, "
            f"seed={self.seed}, shuffle={self.shuffle}, drop_last={self.drop_last}, rank={self.rank}, "
            f"world_size={self.world_size}, device={str(self.device)!r})"
        )
