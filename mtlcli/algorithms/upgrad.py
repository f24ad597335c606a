"""UPGrad: project every task gradient onto the dual cone of all of them, then sum."""

from __future__ import annotations

from torch import nn

from mtlcli.algorithms import aggregators
from mtlcli.algorithms.gradient_method import GradientMethod
from mtlcli.algorithms.jacobian import GradientPath
from mtlcli.heads import MTLHeads


class UPGrad(GradientMethod):
    """UPGrad, unconflicting projection of gradients (Jacobian descent).

    Paper: "Jacobian Descent for Multi-Objective Optimization", Pierre Quinton and
    Valérian Rey, 2024. https://arxiv.org/abs/2406.16232

    Update rule: each ``g_t / T`` is projected onto the dual cone
    ``{x : g_s·x >= 0 for every task s}`` and the projections are summed
    (in weights: per task a small QP on the Gramian, solved exactly). The
    result conflicts with no task and equals the mean when no pair conflicts.
    Needs only the Gramian (fast path: about one backward).

    Output scale: mean of the task gradients (each weight is at least ``1/T``).

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        reg_eps: 0 solves the exact rule; a positive value uses torchjd's regularised
            Gramian ``K/tr(K) + reg_eps I`` (torchjd's default is 1e-4).
        norm_eps: with ``reg_eps > 0`` only: below this trace the normalised Gramian is
            replaced by 0 (the result is then the mean).
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    hyperparameters = ("reg_eps", "norm_eps")

    def __init__(self, backbone: nn.Module, heads: MTLHeads, reg_eps: float = 0.0, norm_eps: float = 1e-4,
                 gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads, aggregators.UPGrad(reg_eps, norm_eps), gradient_path)
        self.reg_eps = float(reg_eps)
        self.norm_eps = float(norm_eps)

