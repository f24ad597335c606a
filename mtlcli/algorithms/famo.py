"""Fast adaptive multitask optimisation (FAMO): balance the tasks' log-loss decrease at O(1) cost."""

from __future__ import annotations

import math

import torch
from torch import nn

from mtlcli.algorithms._loss_weighting import LossWeighting
from mtlcli.algorithms.base import StepOutput
from mtlcli.heads import MTLHeads

# Adam's defaults (torch.optim.Adam, and the reference implementation's optimizer for the logits).
_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8
# Added to each loss before its logarithm (the reference's epsilon); the minimum loss is 0 (cross-entropy).
_LOSS_EPS = 1e-8


class FAMO(LossWeighting):
    """FAMO: task weights that make every task's log-loss fall at the same rate.

    Paper: "FAMO: Fast Adaptive Multitask Optimization", Bo Liu, Yihao Feng,
    Peter Stone, Qiang Liu, NeurIPS 2023. https://arxiv.org/abs/2306.03792

    Update rule. Task logits ``xi`` (one per task, start at 0) give ``z = softmax(xi)``
    over the tasks present. The network step minimises
    ``L = sum_t z_t log(L_t + eps) / c`` with ``c = sum_t z_t / (L_t + eps)`` held
    constant, i.e. the update is ``sum_t w_t grad L_t`` with
    ``w_t = (z_t / (L_t + eps)) / sum_j (z_j / (L_j + eps))``. After the network
    step, the same batch is evaluated again (one extra forward pass without
    gradients, done at the start of the next training step) and the decrease
    ``delta_t = log(L_t before + eps) - log(L_t after + eps)`` updates the logits:
    ``xi <- Adam(xi; grad = J_softmax(xi)^T delta + gamma xi, lr = w_lr)``, so a
    task whose log-loss fell more loses weight. Output scale: a convex combination
    (the ``w_t`` of the present tasks sum to 1). Tasks present in only one of the
    two evaluations get a zero gradient that step. The re-evaluation runs in the
    module's training mode, as in the reference code (BatchNorm running statistics
    see that batch twice). The logits and the Adam moments
    are part of the checkpoint; the one pending logits update of the last step
    before a checkpoint is not.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        w_lr: learning rate of the Adam optimizer on the task logits (0.025 as in the paper's code and LibMTL).
        gamma: weight decay (L2, Adam style) on the task logits, pulling the weights back toward equal (1e-3 as in LibMTL).
    """

    def __init__(self, backbone: nn.Module, heads: MTLHeads, w_lr: float = 0.025, gamma: float = 1e-3):
        super().__init__(backbone, heads)
        if not (math.isfinite(w_lr) and w_lr > 0):
            raise ValueError(f"FAMO w_lr must be positive and finite, got {w_lr}")
        if not (math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"FAMO gamma must be non-negative and finite, got {gamma}")
        self.w_lr = float(w_lr)
        self.gamma = float(gamma)
        n = self.num_tasks
        self.register_buffer("logits", torch.zeros(n))
        self.register_buffer("adam_exp_avg", torch.zeros(n))
        self.register_buffer("adam_exp_avg_sq", torch.zeros(n))
        self.register_buffer("adam_steps", torch.zeros((), dtype=torch.long))
        # The last training batch and its losses, awaiting the post-step re-evaluation.
        self._pending: tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[int, torch.Tensor]] | None = None
        self.register_load_state_dict_pre_hook(FAMO._drop_pending)

    def task_weights(self, task_losses: dict[int, torch.Tensor]) -> torch.Tensor:
        """``softmax(xi)`` over the tasks present, in the dict's order."""
        return torch.softmax(self.logits.index_select(0, self.slots(task_losses, self.logits.device)), dim=0)

    def combine(self, task_losses: dict[int, torch.Tensor]) -> torch.Tensor:
        losses = self.stack(task_losses)
        z = self.task_weights(task_losses).to(losses.dtype)
        shifted = losses + _LOSS_EPS
        c = (z / shifted).sum().detach()
        return (z * torch.log(shifted)).sum() / c

    def update_logits(self, losses_before: dict[int, torch.Tensor], losses_after: dict[int, torch.Tensor]) -> None:
        """One Adam step on the logits from the log-loss decrease of the tasks in both dicts."""
        common = [t for t in losses_before if t in losses_after]
        grad = torch.zeros_like(self.logits)
        if common:
            slots = self.slots(common, self.logits.device)
            before = torch.stack([losses_before[t].detach().reshape(()) for t in common]).to(self.logits)
            after = torch.stack([losses_after[t].detach().reshape(()) for t in common]).to(self.logits)
            delta = torch.log(before + _LOSS_EPS) - torch.log(after + _LOSS_EPS)
            z = torch.softmax(self.logits.index_select(0, slots), dim=0)
            # J_softmax^T delta, with J = diag(z) - z z^T.
            grad.index_copy_(0, slots, z * (delta - (z * delta).sum()))
        self._adam_step(grad)

    def _adam_step(self, grad: torch.Tensor) -> None:
        grad = grad + self.gamma * self.logits
        self.adam_steps += 1
        step = int(self.adam_steps)
        self.adam_exp_avg.mul_(_BETA1).add_(grad, alpha=1 - _BETA1)
        self.adam_exp_avg_sq.mul_(_BETA2).addcmul_(grad, grad, value=1 - _BETA2)
        bias1 = 1 - _BETA1**step
        bias2 = 1 - _BETA2**step
        denom = (self.adam_exp_avg_sq.sqrt() / math.sqrt(bias2)).add_(_ADAM_EPS)
        self.logits.addcdiv_(self.adam_exp_avg, denom, value=-self.w_lr / bias1)

    def training_step(self, x: torch.Tensor, y: torch.Tensor, task_id: torch.Tensor, step=None) -> StepOutput:
        # The optimizer stepped since the last call, so the pending batch now shows the loss decrease.
        # (Data-parallel: ``step`` makes the re-evaluated losses global means, as the step's own.)
        if self._pending is not None:
            px, py, ptask, before = self._pending
            self._pending = None
            with torch.no_grad():
                after = self.task_losses(self(px, ptask), py, step)
            self.check_finite(after)
            self.update_logits(before, after)
        out = super().training_step(x, y, task_id, step)
        self._pending = (x.detach(), y.detach(), task_id.detach(), out.task_losses)
        return out

    @staticmethod
    def _drop_pending(module: "FAMO", *args, **kwargs) -> None:
        # A loaded checkpoint replaces the parameters the pending batch was measured with.
        module._pending = None

    def extra_repr(self) -> str:
        return f"w_lr={self.w_lr}, gamma={self.gamma}"
