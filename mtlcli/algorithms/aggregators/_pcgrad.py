"""PCGrad: project each task gradient off the gradients it conflicts with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

from mtlcli.algorithms.aggregators._base import Aggregator, gramian_to_numpy, weights_like
from mtlcli.algorithms.aggregators._visiting_order import VisitingOrder

REDUCTIONS = ("sum", "mean")


def pcgrad_coefficients(K: np.ndarray, order: Sequence[Sequence[int]], eps: float) -> np.ndarray:
    """Row i holds the coefficients of the projected ``p_i`` in the original rows.

    A projection needs only inner products: with ``p_i = c_iᵀG``,
    ``p_i·g_j = c_iᵀK[:, j]`` and ``||g_j||² = K[j, j]``.
    """
    T = len(K)
    coefficients = np.eye(T)
    for i in range(T):
        c = coefficients[i]
        for j in order[i]:
            dot = float(c @ K[:, j])
            denominator = K[j, j] + eps
            if dot < 0 and denominator > 0:
                c[j] -= dot / denominator
    return coefficients


def pcgrad_weights(gramian: Tensor, order: Sequence[Sequence[int]], eps: float = 0.0, reduction: str = "sum") -> Tensor:
    """PCGrad's task weights for an explicit visiting order (``order[i]`` lists the
    rows that row i is projected against, in turn)."""
    K = gramian_to_numpy(gramian)
    w = pcgrad_coefficients(K, order, eps).sum(axis=0)
    if reduction == "mean":
        w /= len(K)
    return weights_like(w, gramian)


class PCGrad(Aggregator):
    """Projecting Conflicting Gradients.

    Paper: "Gradient Surgery for Multi-Task Learning", Tianhe Yu, Saurabh Kumar,
    Abhishek Gupta, Sergey Levine, Karol Hausman, Chelsea Finn, NeurIPS 2020,
    https://arxiv.org/abs/2001.06782.

    Rule: for each task i start from ``p_i = g_i``; for each other task j in the
    visiting order, if ``p_i·g_j < 0`` then
    ``p_i <- p_i - (p_i·g_j)/(||g_j||² + eps) g_j`` (always against the ORIGINAL
    ``g_j``). The direction is ``Σ_i p_i`` or its mean. Computed as weights
    from the Gramian: each ``p_i`` is a combination of the original rows. For
    two tasks the result has a non-negative inner product with both gradients.
    A zero gradient has ``p_i·g_j = 0`` and never projects anything.

    Output scale: ``reduction='sum'`` (default; LibMTL, torchjd and the authors'
    code) gives ``Σ_i p_i`` (equals the sum when nothing conflicts);
    ``'mean'`` divides by T.

    Args:
        reduction: ``'sum'`` or ``'mean'`` of the projected gradients.
        eps: added to ``||g_j||²`` in the projection (0, the exact rule, by
            default; LibMTL uses 1e-8, which shifts results for tiny gradients).
        order: ``'index'`` (default: increasing task order, deterministic) or
            ``'random'`` (a fresh permutation per task and call, as in the paper).
        seed: seed of the generator behind ``order='random'`` (its state is
            checkpointed).
    """

    gramian_only = True
    _hyperparameters = ("reduction", "eps", "order", "seed")

    def __init__(self, reduction: str = "sum", eps: float = 0.0, order: str = "index", seed: int = 0):
        if reduction not in REDUCTIONS:
            raise ValueError(f"PCGrad reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not eps >= 0:
            raise ValueError(f"PCGrad eps must be >= 0, got {eps}")
        self.reduction = reduction
        self.eps = float(eps)
        self._order = VisitingOrder(order, seed)
        self.order = order
        self.seed = int(seed)

    def weights(self, gramian: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        K = gramian_to_numpy(gramian, task_ids)
        w = pcgrad_coefficients(K, self._order(len(K)), self.eps).sum(axis=0)
        if self.reduction == "mean":
            w /= len(K)
        return weights_like(w, gramian)

    def state_dict(self) -> dict[str, Any]:
        return self._order.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._order.load_state_dict(state)
