"""Per-task accuracy and mean loss, accumulated per sample (never per batch).

One ``TaskMetrics`` object per split and pass; it is reset by being rebuilt, so a
validation pass never sees the previous epoch's samples (the lr scheduler would
otherwise watch a cumulative mean).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from mtlcli.heads import TaskLogits


@dataclass(frozen=True)
class TaskResult:
    task_id: int
    loss: float
    accuracy: float
    num_samples: int


class TaskMetrics:
    """torchmetrics accumulators for each task: sample-weighted mean loss and micro accuracy."""

    def __init__(self, num_classes: dict[int, int], device: torch.device | str = "cpu"):
        # imported here: torchmetrics pulls in scipy, which ``mtlcli validate`` (it reads
        # the Trainer's signature through this package) should not pay for
        from torchmetrics import MeanMetric
        from torchmetrics.classification import MulticlassAccuracy

        self._loss = {t: MeanMetric().to(device) for t in num_classes}
        self._accuracy = {
            t: MulticlassAccuracy(num_classes=k, average="micro", validate_args=False).to(device)
            for t, k in num_classes.items()
        }
        self._count = {t: 0 for t in num_classes}

    def update(self, outputs: dict[int, TaskLogits], y: torch.Tensor, task_losses: dict[int, torch.Tensor]) -> None:
        """Add one batch: ``task_losses[t]`` is the mean loss over task t's ``len(index)`` rows."""
        for t, out in outputs.items():
            n = out.index.numel()
            self._loss[t].update(task_losses[t].detach(), weight=n)
            self._accuracy[t].update(out.logits.detach(), y.index_select(0, out.index))
            self._count[t] += n

    def compute(self) -> list[TaskResult]:
        """One result per task that saw at least one sample, in task order.

        Data-parallel: each process updated with its shard; the counts are summed over
        processes first, so every process computes (and torchmetrics syncs) the same
        tasks, and the results cover the whole split.
        """
        from mtlcli.engine.distributed import all_reduce_sum_

        tasks = sorted(self._loss)
        device = self._accuracy[tasks[0]].device if tasks else "cpu"
        counts = all_reduce_sum_(torch.tensor([self._count[t] for t in tasks], dtype=torch.long, device=device))
        with warnings.catch_warnings():  # a task missing from this process's shard is expected
            warnings.filterwarnings("ignore", message=".*was called before the ``update`` method")
            return [
                TaskResult(t, float(self._loss[t].compute()), float(self._accuracy[t].compute()), int(n))
                for t, n in zip(tasks, counts.tolist())
                if n > 0
            ]


def average(results: list[TaskResult]) -> TaskResult:
    """Average over tasks (each task counts once, as CLArena's ``average_*`` columns)."""
    n = len(results)
    return TaskResult(
        task_id=0,
        loss=sum(r.loss for r in results) / n,
        accuracy=sum(r.accuracy for r in results) / n,
        num_samples=sum(r.num_samples for r in results),
    )
