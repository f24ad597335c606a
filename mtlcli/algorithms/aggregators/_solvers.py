"""Exact solvers for the small T x T problems behind the aggregators.

Everything here works on float64 numpy arrays and knows the task gradients only
through their Gramian ``K = G Gᵀ``. Every solver either reaches its optimality
conditions or raises :class:`SolverError`; none returns a "best effort".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mtlcli.algorithms.aggregators._base import SolverError

EPS64 = float(np.finfo(np.float64).eps)


def dependence_threshold(eps: float) -> float:
    """Relative smallest singular value below which a face of the QP counts as
    singular (its entering column depends on the passive ones). It follows the
    precision the Gramian was formed in: a float32 Gramian of dependent rows is
    only singular to about 1e-7, and solving it as exact would buy large,
    cancelling weights out of rounding noise."""
    return max(1e-13, 8.0 * eps)


def active_set_qp(Q: np.ndarray, c: np.ndarray, r: np.ndarray | None = None, eps: float = EPS64) -> np.ndarray:
    """Minimise ``0.5 xᵀQx + cᵀx`` over ``x >= 0`` (and ``rᵀx = 1`` when ``r`` is
    given, with ``r > 0``), for a positive semi-definite ``Q``.

    A primal active-set method in the style of Lawson-Hanson: finite, exact up to
    rounding, and happy with a singular ``Q`` (variables whose columns depend on
    the passive ones never enter, so the answer is a vertex of the optimal set).
    Variables are scaled so that ``Q`` has a unit diagonal first, which makes the
    tolerances blind to the gradients' scale: a task gradient 10⁶ times smaller
    than another keeps all its digits. Variables with ``Q_jj = 0`` (zero
    gradients) stay at 0; without an equality constraint they cannot lower the
    objective, since ``c`` is in the range of ``Q`` in every use here. ``eps``
    is the machine epsilon of the precision ``Q`` was computed in.
    """
    n = len(c)
    x = np.zeros(n)
    live = np.flatnonzero(np.diag(Q) > 0)
    if r is not None and live.size < n:
        raise ValueError("active_set_qp with an equality constraint needs a positive diagonal")
    if live.size == 0:
        return x
    scale = 1.0 / np.sqrt(Q[live, live])
    Qs = (Q if live.size == n else Q[live][:, live]) * scale[:, None] * scale[None, :]
    cs = c[live] * scale
    if r is None:
        x[live] = _active_set(Qs, cs, None, dependence_threshold(eps)) * scale
    else:
        rs = r[live] * scale
        top = float(rs.max())
        # rᵀx = 1  <=>  (rs/top)ᵀ(top·y) = 1 with y the scaled variables.
        x[live] = _active_set(Qs, cs / top, rs / top, dependence_threshold(eps)) * scale / top
    return x


def _face_system(Q: np.ndarray, r: np.ndarray | None, P: np.ndarray) -> np.ndarray:
    """The matrix of the face ``{x_i = 0 for i not in P}``: ``Q_PP``, bordered by
    ``r_P`` when there is an equality constraint."""
    QP = Q[P][:, P]
    if r is None:
        return QP
    p = P.size
    bordered = np.zeros((p + 1, p + 1))
    bordered[:p, :p] = QP
    bordered[:p, p] = r[P]
    bordered[p, :p] = r[P]
    return bordered


def _solve_face(
    Q: np.ndarray, c: np.ndarray, r: np.ndarray | None, P: np.ndarray, system: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Minimiser on the face (and ``rᵀx = 1``), with the constraint's multiplier.
    ``system``: the face's matrix when the caller has it already."""
    if system is None:
        system = _face_system(Q, r, P)
    if r is None:
        return np.linalg.solve(system, -c[P]), 0.0
    solution = np.linalg.solve(system, np.concatenate([-c[P], [1.0]]))
    return solution[:-1], float(solution[-1])


def _is_singular(system: np.ndarray, threshold: float) -> bool:
    s = np.linalg.svd(system, compute_uv=False)
    return not s[-1] > threshold * s[0]


def _active_set(Q: np.ndarray, c: np.ndarray, r: np.ndarray | None, dependent: float) -> np.ndarray:
    n = len(c)
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    nu = 0.0  # multiplier of rᵀx = 1
    if r is not None:
        # Feasible start: the best vertex of the scaled simplex.
        vertex_values = 0.5 * np.diag(Q) / r**2 + c / r
        k = int(np.argmin(vertex_values))
        x[k] = 1.0 / r[k]
        passive[k] = True
        nu = -(Q[k, k] * x[k] + c[k]) / r[k]
    skip = np.zeros(n, dtype=bool)  # candidates that cannot enter at the current x
    abs_Q, abs_c = np.abs(Q), np.abs(c)
    for _ in range(30 * (n + 1)):
        gain = -(Q @ x + c)  # minus the gradient: how much each variable wants to grow
        noise = abs_Q @ np.abs(x) + abs_c  # size of the terms summed into the gain
        if r is not None:
            gain -= nu * r
            noise += abs(nu) * r
        candidates = ~passive & ~skip & (gain > 1e3 * n * EPS64 * noise)
        if not candidates.any():
            return x
        j = int(np.argmax(np.where(candidates, gain, -np.inf)))
        passive[j] = True
        P = np.flatnonzero(passive)
        system = _face_system(Q, r, P)
        if _is_singular(system, dependent):
            passive[j] = False
            skip[j] = True
            continue
        entering = True
        while True:
            if not entering:
                P, system = np.flatnonzero(passive), None
            z = np.zeros(n)
            z[P], face_nu = _solve_face(Q, c, r, P, system)
            if (z[P] > 0).all():
                x, nu = z, face_nu
                skip[:] = False
                break
            if entering and z[j] <= 0:
                # Rounding made the entering variable's step non-positive: its gain
                # was noise. Keep x and try another candidate.
                passive[j] = False
                skip[j] = True
                break
            entering = False
            blocking = passive & (z <= 0)
            ratios = x[blocking] / (x[blocking] - z[blocking])
            alpha = float(ratios.min())
            x = x + alpha * (z - x)
            leave = np.flatnonzero(blocking)[int(np.argmin(ratios))]
            passive[leave] = False
            passive &= x > 0
            x[~passive] = 0.0
    raise SolverError("active-set QP did not converge (iteration limit)")


def min_norm_weights(K: np.ndarray, eps: float = EPS64) -> np.ndarray:
    """``argmin_{w in simplex} wᵀKw``: the convex combination of the rows with the
    smallest norm (MGDA's problem).

    Zero rows: the minimum is 0, reached by any weighting of them; the uniform
    one over the zero rows is returned (permutation-equivariant).
    """
    T = len(K)
    zero = np.diag(K) <= 0
    if zero.any():
        return zero / zero.sum()
    return active_set_qp(K, np.zeros(T), np.ones(T), eps)


def lower_bounded_qp(K: np.ndarray, lower: np.ndarray, eps: float = EPS64) -> np.ndarray:
    """``argmin_v vᵀKv subject to v >= lower`` (elementwise).

    With ``v = lower + x`` this is a non-negative QP in ``x``; ``Gᵀv`` is the
    projection of ``Gᵀlower`` onto the dual cone ``{u : G u >= 0}``. When K is
    singular the minimiser ``v`` is not unique, but ``Gᵀv`` is.
    """
    return lower + active_set_qp(K, K @ lower, eps=eps)


def project_onto_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto ``{w >= 0, sum w = 1}`` (sort-based, exact)."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    index = np.arange(1, len(v) + 1)
    k = np.flatnonzero(u - cumulative / index > 0)[-1]
    theta = cumulative[k] / (k + 1)
    return np.maximum(v - theta, 0.0)


def correlation(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row norms ``n`` and the cosine matrix ``C = N⁻¹ K N⁻¹`` (rows with n = 0 left 0)."""
    n = np.sqrt(np.maximum(np.diag(K), 0.0))
    inv = np.divide(1.0, n, out=np.zeros_like(n), where=n > 0)
    C = K * inv[:, None] * inv[None, :]
    np.fill_diagonal(C, (n > 0).astype(float))
    return n, C


def zero_in_hull(K: np.ndarray, eps: float, correlated: tuple[np.ndarray, np.ndarray] | None = None) -> bool:
    """Whether 0 lies in the convex hull of the rows (some non-zero ``β >= 0`` has
    ``Gᵀβ = 0``): a zero row, or a min-norm point of the *unit* rows whose squared
    norm is at the rounding noise of a Gramian formed with machine epsilon
    ``eps``. Unit rows make the test blind to norm disparities, which do not
    change the answer. ``correlated``: ``correlation(K)`` when the caller has it."""
    n, C = correlation(K) if correlated is None else correlated
    if (n == 0).any():
        return True
    T = len(K)
    threshold = 4 * T * eps
    # Certificate that spares the QP in the common case: on the simplex
    # wᵀCw >= λ_min(C) ||w||² >= λ_min(C) / T. With twice the threshold as margin
    # (and room for the rounding of both computations) the QP's answer is known.
    if float(np.linalg.eigvalsh(C)[0]) / T > 2 * threshold + 1e3 * T * EPS64:
        return False
    w = min_norm_weights(C, eps)
    return float(w @ C @ w) <= threshold


def damped_newton(
    C: np.ndarray,
    psi: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
    y0: np.ndarray,
    max_iter: int = 200,
) -> np.ndarray:
    """Minimise ``f(y) = 0.5 yᵀCy - Σ ψ_i(y_i)`` over ``y > 0`` (f strictly convex).

    ``psi(y)`` returns ``(ψ(y), ψ'(y), ψ''(y))`` elementwise with ``ψ'' < 0``.
    Far from the minimiser: Newton steps with a fraction-to-boundary rule and
    Armijo backtracking on ``f``. Close to it (Newton decrement below what ``f``
    can resolve in float64): full Newton steps, judged by the stationarity
    residual ``(Cy)_i - ψ'_i``, which converges quadratically to rounding level.
    """
    y = y0.astype(float).copy()
    abs_C = np.abs(C)

    def f(v: np.ndarray) -> float:
        return 0.5 * float(v @ C @ v) - float(psi(v)[0].sum())

    def residual(v: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """Stationarity residual, its relative size, ψ(v) and ψ''(v) (one ψ call per point)."""
        values, d1, d2 = psi(v)
        grad = C @ v - d1
        size = abs_C @ np.abs(v) + np.abs(d1)
        return grad, float(np.max(np.abs(grad) / size)), values, d2

    grad, relative, values, d2 = residual(y)
    stalled = 0
    for _ in range(max_iter):
        if relative <= 64 * len(y) * EPS64:
            return y
        step = -np.linalg.solve(C - np.diag(d2), grad)
        decrement = float(-grad @ step)
        t = 1.0
        shrinking = step < 0
        if shrinking.any():
            t = min(1.0, 0.99 * float(np.min(-y[shrinking] / step[shrinking])))
        f0 = 0.5 * float(y @ C @ y) - float(values.sum())
        damped = decrement > 1e-10 * max(1.0, abs(f0))
        if damped:
            while f(y + t * step) > f0 - 1e-4 * t * decrement:
                t *= 0.5
                if t < 1e-20:
                    raise SolverError("Newton's method: no descent along the Newton direction")
        candidate = y + t * step
        new_grad, new_relative, new_values, new_d2 = residual(candidate)
        # Steps shortened by Armijo or by the boundary rule are progress even when the
        # residual grows; only full Newton steps are judged by the residual.
        if damped or t < 1.0 or new_relative < relative:
            y, grad, relative, stalled = candidate, new_grad, new_relative, 0
            values, d2 = new_values, new_d2
        else:
            stalled += 1
            if stalled >= 3:
                # Rounding floor reached: accept only a stationary point to high accuracy.
                if relative <= 1e-10:
                    return y
                raise SolverError("Newton's method stalled away from the stationary point")
    raise SolverError("Newton's method did not converge")
