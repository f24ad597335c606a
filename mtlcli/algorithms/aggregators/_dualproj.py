"""DualProj: the mean gradient projected onto the dual cone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from mtlcli.algorithms.aggregators._base import Aggregator, gramian_to_numpy, input_eps, weights_like
from mtlcli.algorithms.aggregators._dual_cone import check_eps, regularized_gramian
from mtlcli.algorithms.aggregators._solvers import lower_bounded_qp


class DualProj(Aggregator):
    """Projection of the mean gradient onto the dual cone of the task gradients.

    Paper: "Jacobian Descent for Multi-Objective Optimization", Pierre Quinton and
    Valérian Rey, 2024, https://arxiv.org/abs/2406.16232 (the rule follows
    GEM's projection, Lopez-Paz and Ranzato 2017).

    Rule: ``w = argmin_v vᵀK'v`` subject to ``v >= 1/T`` and ``d = Gᵀw``: the
    closest vector to the mean ``g0`` with ``g_i·d >= 0`` for every task. Solved
    exactly (Lawson-Hanson active set, float64). With a singular Gramian the
    weights are not unique; ``d`` is.

    Output scale: mean of the task gradients (``d = g0`` when nothing conflicts
    with it; weights at least ``1/T`` each).

    Args:
        reg_eps: 0 (default) solves the exact rule with ``K' = K``. A positive
            value uses torchjd's ``K' = K/tr(K) + reg_eps I`` (torchjd's
            default is 1e-4), which moves the answer away from the exact projection.
        norm_eps: with ``reg_eps > 0`` only: when ``tr(K) < norm_eps`` the
            normalised Gramian is replaced by 0 (torchjd's behaviour, default 1e-4).
    """

    gramian_only = True
    _hyperparameters = ("reg_eps", "norm_eps")

    def __init__(self, reg_eps: float = 0.0, norm_eps: float = 1e-4):
        check_eps(reg_eps, norm_eps)
        self.reg_eps = float(reg_eps)
        self.norm_eps = float(norm_eps)

    def weights(self, gramian: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        K = regularized_gramian(gramian_to_numpy(gramian, task_ids), self.reg_eps, self.norm_eps)
        T = len(K)
        return weights_like(lower_bounded_qp(K, np.full(T, 1.0 / T), input_eps(gramian)), gramian)
