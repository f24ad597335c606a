"""Smooth Tchebycheff scalarisation (STCH) of the normalised task losses."""

from __future__ import annotations

import math

import torch
from torch import nn

from mtlcli.algorithms._loss_weighting import LossWeighting
from mtlcli.heads import MTLHeads

# Added inside the logarithms, as in the reference implementation, so a zero loss stays finite.
_LOG_EPS = 1e-20


class STCH(LossWeighting):
    """Smooth Tchebycheff scalarisation with a warm-up nadir estimate.

    Paper: "Smooth Tchebycheff Scalarization for Multi-Objective Optimization",
    Xi Lin, Xiaoyuan Zhang, Zhiyuan Yang, Fei Liu, Zhenkun Wang, Qingfu Zhang,
    ICML 2024. https://arxiv.org/abs/2402.19078

    Update rule (the paper's MTL setting, as in LibMTL), by 0-based epoch ``e``:

    - ``e < warmup_epochs``: ``L = sum_{t in T_b} log L_t`` (warm-up);
    - ``e == warmup_epochs``: the same loss, while the mean loss of each task over
      this epoch is recorded as its nadir value ``z_t``;
    - afterwards: ``L = n * mu * log sum_{t in T_b} exp(log(L_t / z_t) / mu)``,
      ``n = |T_b|``: a smooth maximum of the log-normalised losses (``mu -> 0`` gives
      the Tchebycheff max, large ``mu`` approaches their mean).

    Output scale: the gradient is ``n * sum_t p_t grad L_t / L_t`` with ``p`` a
    softmax over the present tasks (weights ``n p_t / L_t``; the ``p_t`` sum to 1,
    so the factor ``n`` puts the step on the scale of a sum of log-losses, as
    during warm-up). A task not seen during the nadir epoch gets ``z_t = 1``.
    Epochs are counted by :meth:`on_train_epoch_end`; the count and nadir are part
    of the checkpoint.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        mu: smoothing parameter (> 0) of the log-sum-exp; 1.0 as in LibMTL.
        warmup_epochs: epochs of log-loss training before the nadir epoch; 4 as in LibMTL.
    """

    def __init__(self, backbone: nn.Module, heads: MTLHeads, mu: float = 1.0, warmup_epochs: int = 4):
        super().__init__(backbone, heads)
        if not (math.isfinite(mu) and mu > 0):
            raise ValueError(f"STCH mu must be positive and finite, got {mu}")
        if int(warmup_epochs) != warmup_epochs or warmup_epochs < 0:
            raise ValueError(f"STCH warmup_epochs must be a non-negative integer, got {warmup_epochs}")
        self.mu = float(mu)
        self.warmup_epochs = int(warmup_epochs)
        n = self.num_tasks
        self.register_buffer("nadir", torch.ones(n))
        self.register_buffer("loss_sum", torch.zeros(n))
        self.register_buffer("loss_count", torch.zeros(n))
        self.register_buffer("completed_epochs", torch.zeros((), dtype=torch.long))

    @property
    def phase(self) -> str:
        """``"warmup"``, ``"nadir"`` (the epoch that estimates it) or ``"stch"``."""
        epoch = int(self.completed_epochs)
        if epoch < self.warmup_epochs:
            return "warmup"
        return "nadir" if epoch == self.warmup_epochs else "stch"

    def combine(self, task_losses: dict[int, torch.Tensor]) -> torch.Tensor:
        losses = self.stack(task_losses)
        slots = self.slots(task_losses, self.nadir.device)
        phase = self.phase
        if phase != "stch":
            if phase == "nadir":
                detached = losses.detach().to(self.loss_sum.dtype)
                self.loss_sum.index_add_(0, slots, detached)
                self.loss_count.index_add_(0, slots, torch.ones_like(detached))
            return torch.log(losses + _LOG_EPS).sum()
        z = self.nadir.index_select(0, slots).to(losses.dtype)
        normalised = torch.log(losses / z + _LOG_EPS)
        return losses.numel() * self.mu * torch.logsumexp(normalised / self.mu, dim=0)

    def on_train_epoch_end(self, epoch: int) -> None:
        if self.phase == "nadir":
            seen = self.loss_count > 0
            mean = (self.loss_sum / self.loss_count.clamp_min(1)).clamp_min(torch.finfo(self.nadir.dtype).tiny)
            self.nadir.copy_(torch.where(seen, mean, torch.ones_like(self.nadir)))
            self.loss_sum.zero_()
            self.loss_count.zero_()
        self.completed_epochs += 1

    def extra_repr(self) -> str:
        return f"mu={self.mu}, warmup_epochs={self.warmup_epochs}"
