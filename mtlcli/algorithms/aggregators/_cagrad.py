"""CAGrad: the best worst-case improvement within a ball around the mean gradient."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from torch import Tensor

from mtlcli.algorithms.aggregators._base import Aggregator, SolverError, gramian_to_numpy, input_eps, weights_like
from mtlcli.algorithms.aggregators._solvers import lower_bounded_qp, min_norm_weights, zero_in_hull

RESCALES = (0, 1, 2)


def _face_solution(K: np.ndarray, b: np.ndarray, rho: float, support: np.ndarray):
    """Minimiser of ``F(w) = bᵀw + rho ||Gᵀw||`` on the affine hull of the face
    ``support`` (closed form) as ``(w, r, optimal, entering)``, or None when it
    does not exist; ``optimal`` says whether it satisfies the optimality
    conditions of the whole simplex; when the minimiser lies in the face but is
    not optimal, ``entering`` holds the vertices outside the face with a
    negative reduced cost (else None).

    On the face, stationarity ``b + rho K w / ||Gᵀw|| = mu 1`` with ``1ᵀw = 1``
    gives ``w = A1/α - A e / r`` where ``A = K_SS⁻¹``, ``α = 1ᵀA1``,
    ``e = b - (1ᵀAb/α) 1`` and ``r = sqrt(α (rho² - eᵀAe))``, which is also the
    coefficient ``rho / ||Gᵀw||``.
    """
    S = support
    norms = np.sqrt(np.diag(K)[S])
    if (norms <= 0).any():
        return None
    C = K[S][:, S] / np.outer(norms, norms)
    singular_values = np.linalg.svd(C, compute_uv=False)
    if not singular_values[-1] > 1e-13 * singular_values[0]:
        return None
    A1 = np.linalg.solve(C, 1.0 / norms) / norms
    Ab = np.linalg.solve(C, b[S] / norms) / norms
    alpha = float(A1.sum())
    e = b[S] - (float(Ab.sum()) / alpha)
    Ae = Ab - (float(Ab.sum()) / alpha) * A1
    discriminant = alpha * (rho * rho - float(e @ Ae))
    if not discriminant > 0:
        return None
    r = math.sqrt(discriminant)
    w_face = A1 / alpha - Ae / r
    w = np.zeros(len(K))
    w[S] = np.maximum(w_face, 0.0)
    if (w_face < -1e-12 * np.abs(w_face).max()).any():
        return w, r, False, None
    # Optimality on the simplex: no other vertex is a descent direction.
    mu = float((b + r * (K @ w))[S] @ w[S])
    reduced = b + r * (K @ w) - mu
    size = np.abs(b) + r * (np.abs(K) @ w) + abs(mu)
    outside = np.ones(len(K), dtype=bool)
    outside[S] = False
    descent = outside & (reduced < -1e-9 * size)
    if not descent.any():
        return w, r, True, None
    return w, r, False, np.flatnonzero(descent)


def _grow_support(K: np.ndarray, b: np.ndarray, rho: float) -> tuple[np.ndarray, float] | None:
    """The optimal face found with closed forms alone, or None.

    Starts at the best vertex; a face whose minimiser leaves the simplex loses
    the variables that went negative, a face whose minimiser is feasible but not
    optimal gains every vertex with a negative reduced cost. Usually a few
    closed forms (no QP) reach the optimal face; the answer is accepted only
    through the same optimality check as in the search, and when this phase
    stalls (no closed form, a face seen twice) the safeguarded search decides."""
    T = len(K)
    support = np.array([int(np.argmin(b + rho * np.sqrt(np.maximum(np.diag(K), 0.0))))])
    seen: set[tuple[int, ...]] = set()
    for _ in range(3 * T):
        seen.add(tuple(support))
        found = _face_solution(K, b, rho, support)
        if found is None:
            return None
        w, r, optimal, entering = found
        if optimal:
            return w, r
        kept = support[w[support] > 0]
        if entering is not None:
            support = np.union1d(support, entering)
        elif kept.size < support.size and kept.size > 0:
            support = kept
        else:
            return None
        if tuple(support) in seen:
            return None
    return None


def cagrad_inner(K: np.ndarray, rho: float, eps: float) -> tuple[np.ndarray, float]:
    """``w* = argmin_{w in simplex} bᵀw + rho ||Gᵀw||`` (``b = G g0``) and
    ``lambda = rho / ||Gᵀw*||``, for an input where ``Gᵀw* != 0``.

    The optimal point ``x* = Gᵀw*`` is the projection of ``-t* g0`` onto the
    convex hull of the rows, for the ``t*`` with ``||x(t*)|| = rho t*`` (the
    optimality conditions of both problems coincide there). Closed forms on
    faces grown from the best vertex usually find the optimal face first
    (:func:`_grow_support`); when they do not, a safeguarded
    search on ``t`` (each step an exact min-norm QP, bisection when the guess
    below leaves the bracket) finds the optimal face; the closed form on that
    face gives the exact answer, checked against the optimality conditions. The
    closed form on a wrong face still proposes the next ``t``: ``1/r``.
    """
    T = len(K)
    b = K.sum(axis=1) / T
    found = _grow_support(K, b, rho)
    if found is not None:
        return found
    g0_squared = float(b.sum()) / T
    ones = np.ones(T)
    lo, hi = 0.0, 2.0 * math.sqrt(float(np.max(np.diag(K)))) / rho
    t = 0.5 * hi
    tried: set[tuple[int, ...]] = set()
    for _ in range(200):
        shifted = K + t * (np.outer(b, ones) + np.outer(ones, b)) + t * t * g0_squared
        w = min_norm_weights(shifted, eps)
        if math.sqrt(max(float(w @ K @ w), 0.0)) > rho * t:
            lo = t
        else:
            hi = t
        support = tuple(np.flatnonzero(w > 0))
        guess = None
        if support not in tried:
            tried.add(support)
            found = _face_solution(K, b, rho, np.asarray(support))
            if found is not None:
                w_face, r, optimal, _ = found
                if optimal:
                    return w_face, r
                guess = 1.0 / r
        t = guess if guess is not None and lo < guess < hi else 0.5 * (lo + hi)
    raise SolverError("CAGrad's inner problem: no face satisfied the optimality conditions")


class CAGrad(Aggregator):
    """Conflict-Averse Gradient descent.

    Paper: "Conflict-Averse Gradient Descent for Multi-task Learning", Bo Liu,
    Xingchao Liu, Xiaojie Jin, Peter Stone, Qiang Liu, NeurIPS 2021,
    https://arxiv.org/abs/2110.14048.

    Rule: with ``g0`` the mean gradient and ``rho = c ||g0||``, ``d`` maximises the
    worst-case improvement ``min_i g_i·d`` over the ball ``||d - g0|| <= rho``:
    ``w* = argmin_{w in simplex} (Gᵀw)·g0 + rho ||Gᵀw||`` and
    ``d = g0 + (rho / ||Gᵀw*||) Gᵀw*``. The inner problem is solved exactly
    (a safeguarded search for the optimal face, then its closed form, checked
    against the optimality conditions), not with SLSQP.

    Degenerate input: when 0 is in the convex hull of the rows (a zero row,
    opposite rows) and no ``d`` in the ball improves every task, every ``d`` in
    the ball with ``g_i·d >= 0`` for all i is optimal (worst-case improvement
    0) and the paper's formula reads 0/0. We return the optimal ``d`` closest to
    ``g0``: the projection of ``g0`` onto the cone ``{d : G d >= 0}`` (it lies in
    the ball). ``g0 = 0`` or ``c = 0`` gives ``d = g0``.

    Output scale: ``d`` is on the mean gradient's scale (``d = g0`` for
    ``c = 0``); weights ``(1/T + lambda w*) / s`` with ``s`` set by ``rescale``.

    Args:
        c: radius of the ball relative to ``||g0||`` (>= 0; 0.4 by default, the
            paper's value for most benchmarks; LibMTL uses 0.5).
        rescale: 0 returns ``d`` (torchjd), 1 returns ``d / (1 + c²)`` (the
            authors' code and LibMTL, the default), 2 returns ``d / (1 + c)``.
    """

    gramian_only = True
    _hyperparameters = ("c", "rescale")

    def __init__(self, c: float = 0.4, rescale: int = 1):
        if not c >= 0:
            raise ValueError(f"CAGrad c must be >= 0, got {c}")
        if rescale not in RESCALES:
            raise ValueError(f"CAGrad rescale must be one of {RESCALES}, got {rescale!r}")
        self.c = float(c)
        self.rescale = int(rescale)

    def weights(self, gramian: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        K = gramian_to_numpy(gramian, task_ids)
        factor = (1.0, 1.0 + self.c**2, 1.0 + self.c)[self.rescale]
        return weights_like(self._unscaled_weights(K, input_eps(gramian)) / factor, gramian)

    def _unscaled_weights(self, K: np.ndarray, eps: float) -> np.ndarray:
        T = len(K)
        uniform = np.full(T, 1.0 / T)
        top = float(np.max(np.diag(K)))
        if top <= 0:
            return uniform
        K = K / top  # the weights are invariant to rescaling K
        rho = self.c * math.sqrt(max(float(K.sum()) / T**2, 0.0))
        if rho == 0:
            return uniform
        if zero_in_hull(K, eps):
            # 0/0 case: the optimum is not unique; take the optimal d nearest to g0.
            v = lower_bounded_qp(K, uniform, eps)
            gap = v - uniform
            if float(gap @ K @ gap) <= rho * rho * (1 + 1e-9):
                return v
        w_star, lam = cagrad_inner(K, rho, eps)
        return uniform + lam * w_star
