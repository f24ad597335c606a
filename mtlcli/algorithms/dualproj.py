"""DualProj: project the mean gradient onto the dual cone of the task gradients."""

from __future__ import annotations

from torch import nn

from mtlcli.algorithms import aggregators
from mtlcli.algorithms.gradient_method import GradientMethod
from mtlcli.algorithms.jacobian import GradientPath
from mtlcli.heads import MTLHeads


class DualProj(GradientMethod):
    """DualProj, the mean gradient projected onto the dual cone.

    Paper: "Jacobian Descent for Multi-Objective Optimization", Pierre Quinton and
    Valérian Rey, 2024. https://arxiv.org/abs/2406.16232 (the projection follows
    GEM, Lopez-Paz and Ranzato 2017).

    Update rule: ``d`` is the vector closest to the mean gradient with
    ``g_t·d >= 0`` for every task present (a QP on the Gramian, solved exactly:
    ``w = argmin vᵀKv`` subject to ``v >= 1/T``, ``d = Σ_t w_t g_t``). Needs only
    the Gramian (fast path: about one backward).

    Output scale: mean of the task gradients (``d`` is the mean when nothing
    conflicts with it).

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        reg_eps: 0 solves the exact rule; a positive value uses torchjd's regularised
            Gramian ``K/tr(K) + reg_eps I`` (torchjd's default is 1e-4).
        norm_eps: with ``reg_eps > 0`` only: below this trace the normalised Gramian is
            replaced by 0 (the result is then the mean).
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    config_name = "dualproj"  # configs/mtl_algorithm/dualproj.yaml, mtl_algorithm=dualproj

    hyperparameters = ("reg_eps", "norm_eps")

    def __init__(self, backbone: nn.Module, heads: MTLHeads, reg_eps: float = 0.0, norm_eps: float = 1e-4,
                 gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads, aggregators.DualProj(reg_eps, norm_eps), gradient_path)
        self.reg_eps = float(reg_eps)
        self.norm_eps = float(norm_eps)

