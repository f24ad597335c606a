"""Evaluate a model on each task's split, one task-labelled pass without gradients."""

from __future__ import annotations

import torch

from mtlcli.algorithms.base import MTLAlgorithm
from mtlcli.engine.metrics import TaskMetrics, TaskResult


@torch.no_grad()
def evaluate(
    model: MTLAlgorithm,
    x: torch.Tensor,
    y: torch.Tensor,
    task_id: torch.Tensor,
    num_classes: dict[int, int],
    batch_size: int,
) -> list[TaskResult]:
    """Per-task mean loss and accuracy over all given samples (model left in eval mode)."""
    model.eval()
    metrics = TaskMetrics(num_classes, device=x.device)
    for start in range(0, x.shape[0], batch_size):
        end = start + batch_size
        xb, yb, tb = x[start:end], y[start:end], task_id[start:end]
        outputs = model(xb, tb)
        metrics.update(outputs, yb, model.task_losses(outputs, yb))
    return metrics.compute()
