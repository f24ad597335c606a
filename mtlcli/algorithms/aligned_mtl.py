"""Aligned-MTL: align the task gradients into an orthogonal, equal-norm system."""

from __future__ import annotations

from typing import Literal

from torch import nn

from mtlcli.algorithms import aggregators
from mtlcli.algorithms.aggregators._aligned_mtl import FLOAT32_EPS
from mtlcli.algorithms.gradient_method import GradientMethod
from mtlcli.algorithms.jacobian import GradientPath
from mtlcli.heads import MTLHeads


class AlignedMTL(GradientMethod):
    """Aligned-MTL, independent component alignment.

    Paper: "Independent Component Alignment for Multi-Task Learning", Dmitry
    Senushkin, Nikolay Patakin, Arseny Kuznetsov, Anton Konushin, CVPR 2023.
    https://arxiv.org/abs/2305.19000

    Update rule: ``K = V diag(l) Vᵀ`` (the Gramian), keep the eigenpairs above
    ``l_max · T · rank_eps``, ``B = sqrt(s) V diag(l^-1/2) Vᵀ``; the aligned
    gradients ``BG`` are orthogonal with equal norms ``sqrt(s)`` (condition
    number 1), and ``d = Gᵀ B p``. Runs on the Gramian (fast path).

    Output scale: ``reduction='sum'`` (LibMTL: ``p = 1``, the sum of the aligned
    gradients) or ``'mean'`` (torchjd: ``p = 1/T``); the two differ by T.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        reduction: ``sum`` or ``mean`` of the aligned gradients.
        scale_mode: ``s`` is the smallest kept eigenvalue (``min``, the paper's choice),
            their median (``median``) or their mean (``rmse``).
        rank_eps: relative eigenvalue threshold that decides the rank (float32 epsilon,
            as LibMTL, whatever the precision).
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    hyperparameters = ("reduction", "scale_mode", "rank_eps")

    def __init__(self, backbone: nn.Module, heads: MTLHeads, reduction: Literal["sum", "mean"] = "sum",
                 scale_mode: Literal["min", "median", "rmse"] = "min", rank_eps: float = FLOAT32_EPS,
                 gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads, aggregators.AlignedMTL(reduction, scale_mode, rank_eps), gradient_path)
        self.reduction, self.scale_mode, self.rank_eps = reduction, scale_mode, float(rank_eps)
