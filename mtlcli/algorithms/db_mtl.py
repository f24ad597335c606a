"""DB-MTL: balance loss scales with a log transform and gradient magnitudes to the largest one."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlcli.algorithms.gradient_method import GradientMethod, Update
from mtlcli.algorithms.jacobian import GradientPath, TaskGradients
from mtlcli.heads import MTLHeads

LOG_EPS = 1e-8   # inside log(L + eps), as in the paper's reference code
NORM_EPS = 1e-8  # in alpha_i = max_j ||m_j|| / (||m_i|| + eps)


def db_mtl_step(G: Tensor, momentum: Tensor, steps: Tensor, beta: float, beta_sigma: float) -> tuple[Tensor, Tensor]:
    """One DB-MTL aggregation (pure): returns (direction, new momentum).

    Args:
        G: (T, P) gradients of ``log(L_t + eps)`` of the tasks present.
        momentum: (T, P) their momentum buffers before this step (zeros at the start).
        steps: (T,) 1-based step count of each task, this step included.
        beta, beta_sigma: ``m <- g + (beta / step**beta_sigma) (m - g)``.
    """
    decay = (beta / steps.to(G.dtype).pow(beta_sigma)).unsqueeze(1)
    m = G + decay * (momentum.to(G.dtype) - G)
    norms = m.norm(dim=1)
    alpha = norms.max() / (norms + NORM_EPS)
    return alpha @ m, m


class DBMTL(GradientMethod):
    """DB-MTL, dual-balancing multi-task learning.

    Paper: "Dual-Balancing for Multi-Task Learning", Baijiong Lin, Weisen Jiang,
    Feiyang Ye, Yu Zhang, Pengguang Chen, Ying-Cong Chen, Shu Liu, James T. Kwok,
    2023. https://arxiv.org/abs/2308.12029

    Update rule (per task present, with its own step count ``s_t``):
    loss-scale balancing takes the gradient of ``log(L_t + 1e-8)``, i.e.
    ``g_t = ∇L_t / (L_t + 1e-8)``; a momentum ``m_t <- g_t + (beta / s_t^beta_sigma)
    (m_t - g_t)`` (zero at the start) smooths it; gradient-magnitude balancing
    rescales every task to the largest norm: ``d = Σ_t α_t m_t`` with
    ``α_t = max_j ||m_j|| / (||m_t|| + 1e-8)``.

    Output scale: a **sum** of T vectors that all have the largest momentum norm.
    Heads receive the gradient of ``log(L_t + 1e-8)`` too (loss-scale balancing
    applies to every parameter, as in the reference code). An absent task's
    momentum and step count wait unchanged. Needs the per-task Jacobian
    (coordinates). State: the (num_tasks x P) momentum and the step counts, as buffers.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        beta: momentum factor in [0, 1); 0.9 in the paper.
        beta_sigma: decay exponent of the momentum factor with the step count (0 keeps it constant).
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    def __init__(self, backbone: nn.Module, heads: MTLHeads, beta: float = 0.9, beta_sigma: float = 0.0,
                 gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads, None, gradient_path)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"DBMTL beta must be in [0, 1), got {beta}")
        if beta_sigma < 0:
            raise ValueError(f"DBMTL beta_sigma must be >= 0, got {beta_sigma}")
        self.beta = float(beta)
        self.beta_sigma = float(beta_sigma)
        like = next(iter(self.shared_parameters()))
        self.register_buffer("momentum", torch.zeros(self.num_tasks, self.num_shared_parameters(),
                                                     dtype=like.dtype, device=like.device))
        self.register_buffer("steps", torch.zeros(self.num_tasks, dtype=torch.long, device=like.device))

    @property
    def needs_jacobian(self) -> bool:
        return True

    def aggregate(self, grads: TaskGradients, losses: Tensor, task_ids: list[int]) -> Update:
        slots = self.slots(task_ids, self.momentum.device)
        scale = 1.0 / (losses + LOG_EPS)  # d log(L + eps) = dL / (L + eps)
        G = grads.jacobian * scale.to(grads.jacobian.dtype).unsqueeze(1)
        self.steps[slots] += 1
        direction, m = db_mtl_step(G, self.momentum[slots], self.steps[slots], self.beta, self.beta_sigma)
        self.momentum[slots] = m.to(self.momentum.dtype)
        return Update(direction=direction, head_weights=scale)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, beta_sigma={self.beta_sigma}, gradient_path={self.gradient_path!r}"
