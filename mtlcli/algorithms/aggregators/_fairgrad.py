"""FairGrad: alpha-fair allocation of the update between the tasks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from torch import Tensor

from mtlcli.algorithms.aggregators._base import Aggregator, gramian_to_numpy, input_eps, weights_like
from mtlcli.algorithms.aggregators._nash_mtl import check_bargaining_defined
from mtlcli.algorithms.aggregators._solvers import correlation, damped_newton


def fairgrad_weights(
    K: np.ndarray, alpha: float, correlated: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """The positive solution of ``K a = a^(-1/alpha)`` (elementwise power), for an
    input where 0 is not in the convex hull of the rows.

    It is the unique minimiser of the strictly convex
    ``0.5 aᵀKa - Σ φ(a_i)`` with ``φ' (a) = a^(-1/alpha)``. Newton runs in the
    variables ``y_i = ||g_i|| a_i`` so that the quadratic part is the cosine
    matrix, whatever the gradients' norms.
    """
    n, C = correlation(K) if correlated is None else correlated
    p = 1.0 / alpha

    def psi(y: np.ndarray):
        a = y / n
        if alpha == 1.0:
            value = np.log(a)
        else:
            value = a ** (1.0 - p) / (1.0 - p)
        return value, a ** (-p) / n, -p * a ** (-p - 1.0) / (n * n)

    # Start on the diagonal solution's ray, at the best point along it.
    y0 = n ** ((1.0 - alpha) / (1.0 + alpha))
    quadratic = float(y0 @ C @ y0)
    linear = float(np.sum(y0 * (y0 / n) ** (-p) / n))
    y0 = y0 * (linear / quadratic) ** (alpha / (alpha + 1.0))
    return damped_newton(C, psi, y0) / n


class FairGrad(Aggregator):
    """FairGrad: the update that is alpha-fair between the tasks' improvements.

    Paper: "Fair Resource Allocation in Multi-Task Learning", Hao Ban and Kaiyi
    Ji, ICML 2024, https://arxiv.org/abs/2402.15638.

    Rule: weights ``a > 0`` solving ``(Kα)_i = a_i^(-1/alpha)`` for every task,
    ``d = Gᵀa``. ``alpha = 1`` is proportional fairness, the Nash-MTL
    bargaining solution (without Nash-MTL's clipping); larger ``alpha`` moves
    towards max-min fairness. Solved exactly by damped Newton on the convex
    potential whose stationary point this is (float64), rather than the
    reference's generic least-squares solver.

    Undefined input: when 0 is in the convex hull of the rows (a zero gradient,
    gradients that cancel) the equations have no positive solution; this raises
    :class:`UndefinedAggregationError` rather than picking another rule.

    Output scale: none imposed; ``d = Gᵀa`` as solved (for ``alpha = 1``,
    ``||d||² = T``).

    Args:
        alpha: the fairness parameter, > 0 (1.0 by default).
    """

    gramian_only = True
    _hyperparameters = ("alpha",)

    def __init__(self, alpha: float = 1.0):
        if not alpha > 0 or math.isinf(alpha):
            raise ValueError(f"FairGrad alpha must be a positive number, got {alpha}")
        self.alpha = float(alpha)

    def weights(self, gramian: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        K = gramian_to_numpy(gramian, task_ids)
        correlated = check_bargaining_defined(K, input_eps(gramian), task_ids, "FairGrad")
        return weights_like(fairgrad_weights(K, self.alpha, correlated), gramian)
