"""GradNorm: learn task weights so that the tasks' gradient norms train at a common rate."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlcli.algorithms.gradient_method import GradientMethod, Update
from mtlcli.algorithms.jacobian import GradientPath, TaskGradients
from mtlcli.heads import MTLHeads

MIN_WEIGHT = 1e-6  # keeps a weight positive after an optimizer step overshoots


class GradNorm(GradientMethod):
    """GradNorm, gradient normalisation for adaptive loss balancing.

    Paper: "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep
    Multitask Networks", Zhao Chen, Vijay Badrinarayanan, Chen-Yu Lee, Andrew
    Rabinovich, ICML 2018. https://arxiv.org/abs/1711.02257

    Update rule: the network descends ``Σ_t w_t L_t`` with learned weights ``w``
    (a parameter of this module, stepped by the same optimizer). ``w`` gets the
    gradient of the GradNorm loss ``L_grad = Σ_t |w_t G_t - Ḡ r_t^alpha|``
    where ``G_t = ||∇_W L_t||`` on ``W`` = the last shared layer (the last backbone
    module with a trainable weight matrix or kernel, with its bias), ``Ḡ`` the mean of ``w_t G_t`` over the tasks
    present, ``r_t = L̃_t / mean(L̃)`` with ``L̃_t = L_t / L_t(0)`` (``L_t(0)``: the
    task's loss at its first step) and the target ``Ḡ r_t^alpha`` held constant,
    so ``∂L_grad/∂w_t = sign(w_t G_t - Ḡ r_t^alpha) G_t``. Before each step ``w`` is
    clamped positive and renormalised to sum to the number of tasks.

    Output scale: a **sum**, ``Σ_t w_t g_t`` with ``Σ_{all tasks} w = T``; heads get
    ``w_t ∇L_t``. Only the last layer's Gramian is needed (cheap on every path).
    State: ``task_weights`` (a parameter) and ``initial_losses`` (a buffer).

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        alpha: strength of the restoring force towards a common training rate (1.5 in the paper).
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    config_name = "gradnorm"  # configs/mtl_algorithm/gradnorm.yaml, mtl_algorithm=gradnorm

    hyperparameters = ("alpha",)

    def __init__(self, backbone: nn.Module, heads: MTLHeads, alpha: float = 1.5,
                 gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads, None, gradient_path)
        if alpha < 0:
            raise ValueError(f"GradNorm alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.task_weights = nn.Parameter(torch.ones(self.num_tasks))
        self.register_buffer("initial_losses", torch.full((self.num_tasks,), float("nan")))

    @property
    def needs_jacobian(self) -> bool:
        return False

    def gramian_params(self) -> list[Tensor]:
        return self.last_shared_layer_parameters()

    def aggregate(self, grads: TaskGradients, losses: Tensor, task_ids: list[int]) -> Update:
        device = self.task_weights.device
        slots = self.slots(task_ids, device)
        with torch.no_grad():
            w_all = self.task_weights.clamp_min(MIN_WEIGHT)
            self.task_weights.copy_(w_all * (self.num_tasks / w_all.sum()))
            first = torch.isnan(self.initial_losses[slots])
            self.initial_losses[slots] = torch.where(first, losses.to(device), self.initial_losses[slots])

            w = self.task_weights[slots]
            norms = torch.diagonal(grads.gramian).clamp_min(0).sqrt().to(device)  # ||∇_W L_t||
            ratio = losses.to(device) / self.initial_losses[slots]
            rate = ratio / ratio.mean()
            target = (w * norms).mean() * rate.pow(self.alpha)
            w_grad = torch.sign(w * norms - target) * norms
        if self.task_weights.grad is None:
            self.task_weights.grad = torch.zeros_like(self.task_weights)
        self.task_weights.grad.index_add_(0, slots, w_grad.to(self.task_weights.dtype))
        weights = w.detach().to(grads.gramian.dtype)
        return Update(weights=weights, head_weights=weights)

