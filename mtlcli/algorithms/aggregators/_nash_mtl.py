"""Nash-MTL: the Nash bargaining solution between the tasks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from torch import Tensor

from mtlcli.algorithms.aggregators._base import (
    Aggregator,
    UndefinedAggregationError,
    gramian_to_numpy,
    input_eps,
    resolve_task_ids,
    weights_like,
)
from mtlcli.algorithms.aggregators._solvers import correlation, damped_newton, zero_in_hull


def check_bargaining_defined(
    K: np.ndarray, eps: float, task_ids: Sequence[int] | None, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """Raise when 0 is in the convex hull of the rows: the potential is then
    unbounded below and no positive solution exists. Returns ``correlation(K)``,
    which both the check and the solvers use."""
    correlated = correlation(K)
    if not zero_in_hull(K, eps, correlated):
        return correlated
    n = np.sqrt(np.maximum(np.diag(K), 0.0))
    ids = resolve_task_ids(task_ids, len(K))
    zero = [ids[i] for i in range(len(K)) if n[i] == 0]
    why = f"task(s) {', '.join(map(str, zero))} have a zero gradient" if zero else "some tasks' gradients cancel out"
    raise UndefinedAggregationError(
        f"{method} is undefined for this batch: 0 is in the convex hull of the task gradients ({why})"
    )


def _log_barrier(y: np.ndarray):
    return np.log(y), 1.0 / y, -1.0 / (y * y)


class NashMTL(Aggregator):
    """Nash-MTL: the Nash bargaining solution of the tasks' utilities ``g_i·d``.

    Paper: "Multi-Task Learning as a Bargaining Game", Aviv Navon, Aviv Shamsian,
    Idan Achituve, Haggai Maron, Kenji Kawaguchi, Gal Chechik, Ethan Fetaya,
    ICML 2022, https://arxiv.org/abs/2202.01017.

    Rule: ``α > 0`` with ``(Kα)_i = 1/α_i`` for every i, and ``d = Gᵀα``; then
    ``||d||² = T``. Found exactly as the unique minimiser of the strictly convex
    ``0.5 αᵀKα - Σ log α_i`` by damped Newton (in float64, in cosine-scaled
    variables so that very different gradient norms keep their precision),
    instead of the reference's sequence of convex programs, which silently
    returns ``α = 1`` when its solver fails.

    Undefined input: when 0 is in the convex hull of the rows (a zero gradient,
    gradients that cancel) no solution exists; this raises
    :class:`UndefinedAggregationError` rather than picking another rule.

    Output scale: ``||d|| = sqrt(T)`` before clipping; then, if
    ``max_norm > 0``, ``d`` is scaled down to norm ``max_norm`` when longer
    (which the reference applies with ``clip_grad_norm_``).

    Args:
        max_norm: clip ``||d||`` to this value (1.0 by default, the reference's
            value; it always clips since ``||d|| = sqrt(T)``). 0 disables it.
    """

    gramian_only = True
    _hyperparameters = ("max_norm",)

    def __init__(self, max_norm: float = 1.0):
        if not max_norm >= 0:
            raise ValueError(f"NashMTL max_norm must be >= 0, got {max_norm}")
        self.max_norm = float(max_norm)

    def weights(self, gramian: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        K = gramian_to_numpy(gramian, task_ids)
        n, C = check_bargaining_defined(K, input_eps(gramian), task_ids, "Nash-MTL")
        T = len(K)
        y0 = np.full(T, math.sqrt(T / float(C.sum())))
        y = damped_newton(C, _log_barrier, y0)
        alpha = y / n
        if self.max_norm > 0:
            norm = math.sqrt(max(float(y @ C @ y), 0.0))
            if norm > self.max_norm:
                alpha *= self.max_norm / norm
        return weights_like(alpha, gramian)
