"""Geometric loss strategy (GLS): the geometric mean of the task losses."""

from __future__ import annotations

import torch

from mtlcli.algorithms._loss_weighting import LossWeighting


class GLS(LossWeighting):
    """Geometric Loss Strategy: minimise the geometric mean of the task losses.

    Paper: "MultiNet++: Multi-Stream Feature Aggregation and Geometric Loss
    Strategy for Multi-Task Learning", Sumanth Chennupati, Ganesh Sistu, Senthil
    Yogamani, Samir A. Rawashdeh, CVPR Workshops 2019. https://arxiv.org/abs/1904.08492

    Update rule: ``L = (prod_{t in T_b} L_t)^(1/n)`` with ``n = |T_b|`` the number
    of tasks present, computed as ``exp(mean(log L_t))`` for stability. Its
    gradient is ``sum_t (L / (n L_t)) grad L_t``: each task is weighted by the
    inverse of its own loss, which makes the update invariant to a rescaling of
    any one loss. Output scale: a geometric **mean** (the weights ``L/(n L_t)``
    are not normalised). A loss of exactly 0 is floored at the smallest positive
    float, which makes the objective (nearly) 0 for that step. No hyperparameters.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
    """

    def combine(self, task_losses: dict[int, torch.Tensor]) -> torch.Tensor:
        losses = self.stack(task_losses)
        return torch.exp(torch.log(losses.clamp_min(torch.finfo(losses.dtype).tiny)).mean())
