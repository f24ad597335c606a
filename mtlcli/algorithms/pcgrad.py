"""PCGrad: remove from each task gradient its component against conflicting tasks."""

from __future__ import annotations

from typing import Literal

from torch import nn

from mtlcli.algorithms import aggregators
from mtlcli.algorithms.gradient_method import GradientMethod
from mtlcli.algorithms.jacobian import GradientPath
from mtlcli.heads import MTLHeads


class PCGrad(GradientMethod):
    """PCGrad, projecting conflicting gradients (gradient surgery).

    Paper: "Gradient Surgery for Multi-Task Learning", Tianhe Yu, Saurabh Kumar,
    Abhishek Gupta, Sergey Levine, Karol Hausman, Chelsea Finn, NeurIPS 2020.
    https://arxiv.org/abs/2001.06782

    Update rule: per task i, ``p_i = g_i``; for every other task j in the visiting
    order, if ``p_i·g_j < 0`` then ``p_i <- p_i - (p_i·g_j)/(||g_j||² + eps) g_j``
    (always against the original ``g_j``); ``d = Σ_i p_i`` (or the mean). Every
    ``p_i`` is a combination of the original gradients, so the rule runs on the
    Gramian (fast path: about one backward). For two tasks ``d`` conflicts with neither.

    Output scale: ``reduction='sum'`` (the paper's code, LibMTL, torchjd) gives
    ``Σ_i p_i``, the sum of the task gradients when nothing conflicts; ``'mean'``
    divides it by the number of tasks present.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        reduction: ``sum`` or ``mean`` of the projected gradients.
        eps: added to ``||g_j||²`` in the projection (0 is the exact rule; LibMTL uses 1e-8).
        order: ``index`` (increasing task id, deterministic) or ``random`` (a fresh
            permutation per task and step, as in the paper).
        seed: seed of the random visiting order (its generator state is checkpointed).
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    hyperparameters = ("reduction", "eps", "order", "seed")

    def __init__(self, backbone: nn.Module, heads: MTLHeads, reduction: Literal["sum", "mean"] = "sum",
                 eps: float = 0.0, order: Literal["index", "random"] = "index", seed: int = 0,
                 gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads, aggregators.PCGrad(reduction, eps, order, seed), gradient_path)
        self.reduction, self.eps, self.order, self.seed = reduction, float(eps), order, int(seed)
