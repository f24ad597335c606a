"""DB-MTL: balance loss scales with a log transform and gradient magnitudes to the largest one."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlcli.algorithms.gradient_method import GradientMethod, Update
from mtlcli.algorithms.jacobian import GradientPath, TaskGradients, column_slices
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
    m = momentum.to(G.dtype, copy=True)
    return db_mtl_step_(G, m, steps, beta, beta_sigma), m


def db_mtl_step_(G: Tensor, momentum: Tensor, steps: Tensor, beta: float, beta_sigma: float,
                 row_scale: Tensor | None = None) -> Tensor:
    """:func:`db_mtl_step` updating ``momentum`` in place, block by block (T x P
    buffers are large: no temporaries of that size); returns the direction.
    ``row_scale`` multiplies G's rows first (the ``1/(L_t + eps)`` of the log losses)."""
    decay = (beta / steps.to(G.dtype).pow(beta_sigma)).unsqueeze(1)
    scale = None if row_scale is None else row_scale.to(G.dtype).unsqueeze(1)
    sq_norms = torch.zeros(G.shape[0], dtype=G.dtype, device=G.device)
    for cols in column_slices(G):
        g = G[:, cols] if scale is None else G[:, cols] * scale
        m = momentum[:, cols]
        m.lerp_(g, 1.0 - decay)  # decay m + (1 - decay) g = g + decay (m - g)
        sq_norms += torch.linalg.vector_norm(m, dim=1).square()
    norms = sq_norms.sqrt()
    alpha = norms.max() / (norms + NORM_EPS)
    return alpha @ momentum


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

    config_name = "db_mtl"  # configs/mtl_algorithm/db_mtl.yaml, mtl_algorithm=db_mtl

    hyperparameters = ("beta", "beta_sigma")

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
        self.steps[slots] += 1
        every_task = len(task_ids) == self.num_tasks  # slots are then 0..T-1: update in place
        m = self.momentum if every_task else self.momentum[slots]
        direction = db_mtl_step_(grads.jacobian, m, self.steps[slots], self.beta, self.beta_sigma, row_scale=scale)
        if not every_task:
            self.momentum[slots] = m
        return Update(direction=direction, head_weights=scale)

