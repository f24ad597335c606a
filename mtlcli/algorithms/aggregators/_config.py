"""ConFIG: the conflict-free direction with equal cosine to every task gradient."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from torch import Tensor

from mtlcli.algorithms.aggregators._base import Aggregator, gramian_to_numpy, input_eps, weights_like
from mtlcli.algorithms.aggregators._solvers import correlation


def config_weights(K: np.ndarray, eps: float) -> np.ndarray:
    """Weights of ConFIG's direction in the original rows.

    With unit rows ``u_i = g_i/||g_i||`` and cosine matrix ``C = UUᵀ``, the
    minimum-norm ``v`` with ``u_i·v = 1`` for all i is ``v = Uᵀ C⁺ 1``; then
    ``d = (Σ_j g_j·v̂) v̂`` with ``v̂ = v/||v||``. All of it needs only ``K``.
    """
    T = len(K)
    n, C = correlation(K)
    live = np.flatnonzero(n > 0)
    w = np.zeros(T)
    if live.size == 0:
        return w
    Cl = C[np.ix_(live, live)]
    eigenvalues, V = np.linalg.eigh(Cl)
    keep = eigenvalues > 16 * live.size * eps * eigenvalues[-1]
    beta = V[:, keep] @ ((V[:, keep].T @ np.ones(live.size)) / eigenvalues[keep])  # C⁺1
    norm_v = math.sqrt(max(float(beta @ Cl @ beta), 0.0))
    if not norm_v > 1e-12 * math.sqrt(live.size):
        return w  # no direction agrees with every task (e.g. exactly opposite rows)
    coefficients = np.zeros(T)
    coefficients[live] = beta / n[live]  # v = Σ coefficients_i g_i
    length = float((K @ coefficients).sum()) / norm_v  # Σ_j g_j·v̂
    return length * coefficients / norm_v


class ConFIG(Aggregator):
    """ConFIG: Conflict-Free Inverse Gradients.

    Paper: "ConFIG: Towards Conflict-free Training of Physics Informed Neural
    Networks", Qiang Liu, Mengyu Chu, Nils Thuerey, 2024 (ICLR 2025),
    https://arxiv.org/abs/2408.11104.

    Rule (the paper's default weights and length): ``v = pinv(U) 1`` with
    ``U`` the unit task gradients, i.e. the shortest vector with the same
    inner product 1 with every unit gradient (equal cosines); ``v̂ = v/||v||``
    and ``d = (Σ_i g_i·v̂) v̂``: the direction is conflict-free whenever the
    equal-cosine direction exists, and its length is the sum of the gradients'
    projections on it. Computed from the Gramian (``v = Uᵀ C⁺ 1``).

    Degenerate input: zero rows have no direction and are left out; when no
    direction has a positive cosine with every row (exactly opposite rows)
    ``v = 0`` and ``d = 0``. The pseudo-inverse drops cosine-matrix eigenvalues
    below ``16 T eps`` of the largest (eps of the input precision), its
    rounding noise.

    Output scale: sum of the gradients' projections on the direction (equals
    the sum of the gradients when they are all equal).

    No hyperparameters.
    """

    gramian_only = True

    def weights(self, gramian: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        K = gramian_to_numpy(gramian, task_ids)
        return weights_like(config_weights(K, input_eps(gramian)), gramian)
