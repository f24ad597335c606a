"""One linear classification head per task, for mixed-task batches.

Tasks may have different numbers of classes, and a batch may miss any task:
the heads group the batch rows by task and return, per task present, the row
indices and that task's logits. Nothing assumes a common class count.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import torch
from torch import nn


class TaskLogits(NamedTuple):
    """The rows of one task in a mixed batch and its head's logits for them."""

    index: torch.Tensor   # (n_t,) long: positions of the task's samples in the batch
    logits: torch.Tensor  # (n_t, num_classes[t])


class MTLHeads(nn.Module):
    """Linear heads keyed by task id (ints from 1).

    Args:
        input_dim: size of the shared representation (the backbone's ``output_dim``).
        num_classes: task id -> number of classes of that task.
    """

    def __init__(self, input_dim: int, num_classes: Mapping[int, int]):
        super().__init__()
        if not num_classes:
            raise ValueError("MTLHeads needs at least one task")
        self.input_dim = int(input_dim)
        self.num_classes = {int(t): int(k) for t, k in sorted(num_classes.items())}
        self.heads = nn.ModuleDict(
            {str(t): nn.Linear(self.input_dim, k) for t, k in self.num_classes.items()}
        )

    @property
    def task_ids(self) -> list[int]:
        return list(self.num_classes)

    def head(self, task_id: int) -> nn.Linear:
        return self.heads[str(task_id)]

    def forward(self, features: torch.Tensor, task_id: torch.Tensor) -> dict[int, TaskLogits]:
        """Per task present in ``task_id``: its rows (ascending) and logits. Ordered by task id."""
        # One stable sort groups the rows by task: a handful of tensor ops and one host
        # transfer per batch whatever the number of tasks (this runs on every step).
        present, counts = torch.unique(task_id, return_counts=True)  # sorted
        k = present.numel()
        host = torch.cat((present, counts)).tolist()
        present, counts = host[:k], host[k:]
        for t in present:
            if t not in self.num_classes:
                raise KeyError(f"batch contains task {t}, which has no head (heads: {self.task_ids})")
        order = task_id.argsort(stable=True)
        indices = order.split(counts)
        rows = features.index_select(0, order).split(counts)
        return {t: TaskLogits(index, self.heads[str(t)](r)) for t, index, r in zip(present, indices, rows)}

    def extra_repr(self) -> str:
        return f"input_dim={self.input_dim}, num_classes={self.num_classes}"
