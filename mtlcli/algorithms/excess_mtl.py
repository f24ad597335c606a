"""ExcessMTL: weight tasks by their estimated excess risk (distance to their own optimum)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlcli.algorithms.gradient_method import GradientMethod, Update
from mtlcli.algorithms.jacobian import GradientPath, TaskGradients, column_slices
from mtlcli.heads import MTLHeads

ADAGRAD_EPS = 1e-7  # inside sqrt(Σ g² + eps), as in the reference code


def excess_risks(G: Tensor, grad_sq_sum: Tensor) -> Tensor:
    """Per-task excess risk estimate ``g_tᵀ diag(1/sqrt(A_t + eps)) g_t`` (pure).

    ``A_t`` is the running sum of ``g_t²`` including this step: a diagonal
    AdaGrad-style estimate of the task's Hessian, so the quadratic form
    approximates how far the task is from its own optimum.
    """
    return accumulate_and_risks_(G, grad_sq_sum.to(G.dtype, copy=True), accumulate=False)


def accumulate_and_risks_(G: Tensor, grad_sq_sum: Tensor, accumulate: bool = True) -> Tensor:
    """``A += G²`` in place (if ``accumulate``), then :func:`excess_risks`; block by
    block, so the (T x P) state gets no temporary of its size."""
    risks = torch.zeros(G.shape[0], dtype=G.dtype, device=G.device)
    for cols in column_slices(G):
        g, a = G[:, cols], grad_sq_sum[:, cols]
        squares = g * g
        if accumulate:
            a.add_(squares.to(a.dtype))
        risks += squares.div_((a.to(G.dtype) + ADAGRAD_EPS).sqrt_()).sum(1)
    return risks


class ExcessMTL(GradientMethod):
    """ExcessMTL, robust multi-task learning with excess risks.

    Paper: "Robust Multi-Task Learning with Excess Risks", Yifei He, Shiji Zhou,
    Guojun Zhang, Hyokun Yun, Yi Xu, Belinda Zeng, Trishul Chilimbi, Han Zhao,
    ICML 2024. https://arxiv.org/abs/2402.02009

    Update rule: per task present, accumulate ``A_t += g_t²`` (coordinate-wise)
    and estimate its excess risk ``e_t = g_tᵀ diag(A_t + 1e-7)^{-1/2} g_t``. A
    task's first positive estimate becomes its normaliser ``e_t(0)`` and leaves the
    weights unchanged; afterwards ``w_t <- w_t exp(robust_step_size * e_t / e_t(0))``
    (exponentiated gradient ascent on the excess risks, as in distributionally
    robust optimisation) and all weights are renormalised to sum to the number of
    tasks. The network descends ``Σ_t w_t L_t``.

    Output scale: a **sum**, ``Σ_t w_t g_t`` with ``Σ_{all tasks} w = T``; heads get
    ``w_t ∇L_t``. Needs the per-task Jacobian. State (buffers): the weights, the
    normalisers and the (num_tasks x P) accumulator ``A``.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        robust_step_size: step size of the multiplicative weight update (1e-2 as in
            group-DRO practice; larger reacts faster to a lagging task).
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    hyperparameters = ("robust_step_size",)

    def __init__(self, backbone: nn.Module, heads: MTLHeads, robust_step_size: float = 1e-2,
                 gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads, None, gradient_path)
        if robust_step_size < 0:
            raise ValueError(f"ExcessMTL robust_step_size must be >= 0, got {robust_step_size}")
        self.robust_step_size = float(robust_step_size)
        like = next(iter(self.shared_parameters()))
        self.register_buffer("loss_weights", torch.ones(self.num_tasks, dtype=like.dtype, device=like.device))
        self.register_buffer("initial_risks", torch.full((self.num_tasks,), float("nan"), dtype=like.dtype,
                                                         device=like.device))
        self.register_buffer("grad_sq_sum", torch.zeros(self.num_tasks, self.num_shared_parameters(),
                                                        dtype=like.dtype, device=like.device))

    @property
    def needs_jacobian(self) -> bool:
        return True

    def aggregate(self, grads: TaskGradients, losses: Tensor, task_ids: list[int]) -> Update:
        slots = self.slots(task_ids, self.loss_weights.device)
        G = grads.jacobian.to(self.grad_sq_sum.dtype)
        every_task = len(task_ids) == self.num_tasks  # slots are then 0..T-1: update in place
        acc = self.grad_sq_sum if every_task else self.grad_sq_sum[slots]
        risks = accumulate_and_risks_(G, acc)
        if not every_task:
            self.grad_sq_sum[slots] = acc
        initial = self.initial_risks[slots]
        first = ~(initial > 0)  # unset (NaN), or a zero-gradient first step that cannot normalise
        self.initial_risks[slots] = torch.where(first, risks, initial)
        exponent = torch.where(first, torch.zeros_like(risks), self.robust_step_size * risks / initial)
        self.loss_weights[slots] *= torch.exp(exponent)
        self.loss_weights.mul_(self.num_tasks / self.loss_weights.sum())
        weights = self.loss_weights[slots].to(grads.jacobian.dtype)
        return Update(weights=weights, head_weights=weights)

