"""Joint learning: the plain multi-task baseline."""

from __future__ import annotations

import torch

from mtlcli.algorithms.base import MTLAlgorithm


class JointLearning(MTLAlgorithm):
    """Joint learning (CLArena's MTL baseline; equal weighting, mean convention).

    Update rule: minimise the mean over the tasks present in the batch of each
    task's mean cross-entropy, ``L = (1/|T_b|) sum_{t in T_b} L_t``. A task absent
    from the batch contributes nothing. Output scale: the mean of the task
    gradients. No hyperparameters.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
    """

    def backward(self, task_losses: dict[int, torch.Tensor]) -> torch.Tensor:
        loss = torch.stack(list(task_losses.values())).mean()
        loss.backward()
        return loss
