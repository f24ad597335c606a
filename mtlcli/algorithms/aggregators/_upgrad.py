"""UPGrad: the sum of each task gradient projected onto the dual cone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from mtlcli.algorithms.aggregators._base import Aggregator, gramian_to_numpy, input_eps, weights_like
from mtlcli.algorithms.aggregators._dual_cone import check_eps, regularized_gramian
from mtlcli.algorithms.aggregators._solvers import lower_bounded_qp


class UPGrad(Aggregator):
    """Unconflicting Projection of Gradients.

    Paper: "Jacobian Descent for Multi-Objective Optimization", Pierre Quinton and
    Valérian Rey, 2024, https://arxiv.org/abs/2406.16232.

    Rule: each ``g_i / T`` is projected onto the dual cone ``{x : G x >= 0}`` and
    the projections are summed. In weights: ``v⁽ⁱ⁾ = argmin_v vᵀK'v`` subject to
    ``v >= e_i / T``, ``w = Σ_i v⁽ⁱ⁾`` and ``d = Gᵀw``. Each QP is solved exactly
    (Lawson-Hanson active set, float64). ``d`` has a non-negative inner product
    with every task gradient, is unchanged by a permutation of the tasks, and
    equals the mean when no pair conflicts. With a singular Gramian the weights
    are not unique (one optimal set is returned); ``d`` is.

    Output scale: mean of the task gradients (each row enters with ``1/T``; the
    weights are at least ``1/T`` each).

    Args:
        reg_eps: 0 (default) solves the exact rule with ``K' = K``. A positive
            value uses torchjd's regularised ``K' = K/tr(K) + reg_eps I``, which
            moves the answer away from the exact projection (torchjd's and
            LibMTL's default is 1e-4).
        norm_eps: with ``reg_eps > 0`` only: when ``tr(K) < norm_eps`` the
            normalised Gramian is replaced by 0, so the result is the plain mean
            (torchjd's behaviour, default 1e-4). Unused when ``reg_eps == 0``.
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
        lower = np.eye(T) / T
        eps = input_eps(gramian)
        w = sum(lower_bounded_qp(K, lower[i], eps) for i in range(T))
        return weights_like(w, gramian)
