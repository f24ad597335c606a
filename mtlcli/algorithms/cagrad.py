"""CAGrad: the update with the best worst-case improvement near the mean gradient."""

from __future__ import annotations

from typing import Literal

from torch import nn

from mtlcli.algorithms import aggregators
from mtlcli.algorithms.gradient_method import GradientMethod
from mtlcli.algorithms.jacobian import GradientPath
from mtlcli.heads import MTLHeads


class CAGrad(GradientMethod):
    """CAGrad, conflict-averse gradient descent.

    Paper: "Conflict-Averse Gradient Descent for Multi-task Learning", Bo Liu,
    Xingchao Liu, Xiaojie Jin, Peter Stone, Qiang Liu, NeurIPS 2021.
    https://arxiv.org/abs/2110.14048

    Update rule: with ``g0`` the mean gradient and ``rho = c ||g0||``, ``d``
    maximises the worst task improvement ``min_i g_i·d`` over the ball
    ``||d - g0|| <= rho``: ``w* = argmin_{w in simplex} (Gᵀw)·g0 + rho ||Gᵀw||`` and
    ``d = g0 + rho Gᵀw* / ||Gᵀw*||``. The inner problem is solved exactly on the
    Gramian (fast path; its cost is reported by ``bench/algorithms.py``).

    Output scale: the mean gradient's scale (``d = g0`` when ``c = 0``), divided by
    ``1 + c²`` (``rescale=1``, the authors' code and LibMTL), by ``1 + c``
    (``rescale=2``) or not at all (``rescale=0``, torchjd).

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        c: radius of the ball relative to ``||g0||`` (0.4, the paper's usual value; LibMTL uses 0.5).
        rescale: output scaling 0, 1 or 2 as above.
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    hyperparameters = ("c", "rescale")

    def __init__(self, backbone: nn.Module, heads: MTLHeads, c: float = 0.4, rescale: Literal[0, 1, 2] = 1,
                 gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads, aggregators.CAGrad(c, rescale), gradient_path)
        self.c, self.rescale = float(c), int(rescale)
