"""Dynamic weight average (DWA): weights from how fast each task's loss falls."""

from __future__ import annotations

import torch
from torch import nn

from mtlcli.algorithms._loss_weighting import LossWeighting
from mtlcli.heads import MTLHeads


def dwa_weights(previous: torch.Tensor, before_previous: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T * softmax(r / temperature)`` with ``r_t = L_t(e-1) / L_t(e-2)`` (all T tasks)."""
    ratio = previous / before_previous.clamp_min(torch.finfo(before_previous.dtype).tiny)
    return previous.numel() * torch.softmax(ratio / temperature, dim=0)


class DWA(LossWeighting):
    """Dynamic Weight Average: a task whose loss fell less last epoch gets more weight.

    Paper: "End-to-End Multi-Task Learning with Attention", Shikun Liu, Edward
    Johns, Andrew J. Davison, CVPR 2019. https://arxiv.org/abs/1803.10704

    Update rule: with ``L_t(e)`` the mean training loss of task ``t`` over epoch
    ``e`` (mean over the steps in which the task appeared), the weights during
    epoch ``e`` are ``lambda_t = T exp(r_t / temperature) / sum_j exp(r_j / temperature)``,
    ``r_t = L_t(e-1) / L_t(e-2)``, over all ``T`` tasks; during the first two epochs
    every ``lambda_t = 1`` (LibMTL's rule). Step loss: ``sum_{t in T_b} lambda_t L_t``.
    Output scale: a **sum**; the weights over all tasks sum to ``T``. A task absent
    from a whole epoch keeps its previous epoch's average (ratio 1 next epoch).
    Epochs are counted by :meth:`on_train_epoch_end`, and the loss history is part
    of the checkpoint.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        temperature: softmax temperature; larger values flatten the weights (2 in the paper).
    """

    def __init__(self, backbone: nn.Module, heads: MTLHeads, temperature: float = 2.0):
        super().__init__(backbone, heads)
        if not temperature > 0:
            raise ValueError(f"DWA temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        n = self.num_tasks
        # Rows: epoch e-2, epoch e-1. Ones make a never-seen task's ratio 1, not 0/0.
        self.register_buffer("epoch_losses", torch.ones(2, n))
        self.register_buffer("loss_sum", torch.zeros(n))
        self.register_buffer("loss_count", torch.zeros(n))
        self.register_buffer("completed_epochs", torch.zeros((), dtype=torch.long))

    def weights(self) -> torch.Tensor:
        """This epoch's weights for all tasks, in ``heads.task_ids`` order."""
        if int(self.completed_epochs) < 2:
            return torch.ones_like(self.loss_sum)
        return dwa_weights(self.epoch_losses[1], self.epoch_losses[0], self.temperature)

    def combine(self, task_losses: dict[int, torch.Tensor]) -> torch.Tensor:
        losses = self.stack(task_losses)
        slots = self.slots(task_losses, self.loss_sum.device)
        detached = losses.detach().to(self.loss_sum.dtype)
        self.loss_sum.index_add_(0, slots, detached)
        self.loss_count.index_add_(0, slots, torch.ones_like(detached))
        w = self.weights().index_select(0, slots).to(losses.dtype)
        return (w * losses).sum()

    def on_train_epoch_end(self, epoch: int) -> None:
        seen = self.loss_count > 0
        mean = torch.where(seen, self.loss_sum / self.loss_count.clamp_min(1), self.epoch_losses[1])
        self.epoch_losses.copy_(torch.stack([self.epoch_losses[1], mean]))
        self.loss_sum.zero_()
        self.loss_count.zero_()
        self.completed_epochs += 1

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
