"""Uncertainty weighting (UW): task weights from learned homoscedastic noise."""

from __future__ import annotations

import math

import torch
from torch import nn

from mtlcli.algorithms._loss_weighting import LossWeighting
from mtlcli.heads import MTLHeads


class UW(LossWeighting):
    """Uncertainty weighting with one learned log-variance per task.

    Paper: "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
    Geometry and Semantics", Alex Kendall, Yarin Gal, Roberto Cipolla, CVPR 2018.
    https://arxiv.org/abs/1705.07115

    Update rule: with ``s_t = log sigma_t^2`` a learned parameter per task,
    ``L = sum_{t in T_b} [ L_t / (2 exp(s_t)) + s_t / 2 ]``; the optimizer updates
    ``s`` together with the network (``dL/ds_t = 1/2 - L_t / (2 exp(s_t))``, so
    ``exp(s_t)`` tracks ``L_t``). Output scale: a **sum**; the effective weights
    ``1 / (2 exp(s_t))`` are not normalised. Only present tasks contribute,
    including their ``s_t / 2`` term. ``s`` is a parameter of this module, so the
    optimizer must be built from the algorithm's parameters, not the backbone's alone.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        init_log_variance: initial s_t for every task; -0.5 as in LibMTL (weight 1/(2 e^-0.5) = 0.82).
    """

    def __init__(self, backbone: nn.Module, heads: MTLHeads, init_log_variance: float = -0.5):
        super().__init__(backbone, heads)
        if not math.isfinite(init_log_variance):
            raise ValueError(f"UW init_log_variance must be finite, got {init_log_variance}")
        self.init_log_variance = float(init_log_variance)
        self.log_variance = nn.Parameter(torch.full((self.num_tasks,), self.init_log_variance))

    def combine(self, task_losses: dict[int, torch.Tensor]) -> torch.Tensor:
        losses = self.stack(task_losses)
        s = self.log_variance.index_select(0, self.slots(task_losses, self.log_variance.device))
        s = s.to(losses.dtype)
        return (losses * (0.5 * torch.exp(-s)) + 0.5 * s).sum()

    def extra_repr(self) -> str:
        return f"init_log_variance={self.init_log_variance}"
