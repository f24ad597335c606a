"""IMTL-G: the update with equal projections onto every task's unit gradient."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from mtlcli.algorithms.aggregators._base import Aggregator, gramian_to_numpy, input_eps, weights_like
from mtlcli.algorithms.aggregators._solvers import dependence_threshold

FORMS = ("closed_form", "pinv")


def imtl_closed_form(K: np.ndarray, eps: float) -> np.ndarray:
    """Weights ``α`` with ``Σα = 1`` and ``d·u_i`` equal for every non-zero row.

    These are the conditions ``Kα = λn``, ``1ᵀα = 1``. When ``K`` is
    non-singular the solution is ``K⁻¹n / 1ᵀK⁻¹n``, computed that way because
    it is better conditioned than the bordered system (nearly collinear rows
    keep 10 digits). Otherwise (T > d, identical rows; "singular" at the
    rounding level of the precision ``eps`` the Gramian was formed in) the bordered system
    ``[[K, -n], [1ᵀ, 0]]`` is solved by least squares (minimum-norm solution
    when the rule leaves a free direction). Rows and columns are first scaled by
    powers of two, which is exact, so norm ratios of 10⁶ cost no precision.
    """
    T = len(K)
    n = np.sqrt(np.maximum(np.diag(K), 0.0))
    live = np.flatnonzero(n > 0)
    alpha = np.zeros(T)
    if live.size == 0:
        return alpha
    m = live.size
    scale = np.exp2(-np.round(np.log2(n[live])))
    Ks = K[np.ix_(live, live)] * scale[:, None] * scale[None, :]
    ns = n[live] * scale
    singular_values = np.linalg.svd(Ks, compute_uv=False)
    threshold = dependence_threshold(eps)
    if singular_values[-1] > threshold * singular_values[0]:
        v = scale * np.linalg.solve(Ks, ns)  # K⁻¹n
        total = float(v.sum())
        if abs(total) > threshold * float(np.abs(v).sum()):
            alpha[live] = v / total
            return alpha
    top = float(scale.max())
    bordered = np.zeros((m + 1, m + 1))
    bordered[:m, :m] = Ks
    bordered[:m, m] = -ns
    bordered[m, :m] = scale / top
    rhs = np.zeros(m + 1)
    rhs[m] = 1.0 / top
    alpha[live] = scale * np.linalg.lstsq(bordered, rhs, rcond=threshold)[0][:m]
    return alpha


def imtl_pinv(K: np.ndarray, eps: float) -> np.ndarray:
    """torchjd's generalisation: ``v = K⁺ n``, ``α = v / Σv`` (0 when ``Σv ≈ 0``).

    The pseudo-inverse drops eigenvalues below ``T·eps·λ_max`` (eps of the input
    precision: below it an eigenvalue is rounding noise of the Gramian). ``K`` is
    first scaled to a unit largest diagonal so that torchjd's absolute threshold
    ``|Σv| < 1e-12`` does not depend on the gradients' scale.
    """
    T = len(K)
    top = float(np.max(np.diag(K)))
    if top <= 0:
        return np.zeros(T)
    K = K / top
    n = np.sqrt(np.maximum(np.diag(K), 0.0))
    eigenvalues, V = np.linalg.eigh(K)
    keep = eigenvalues > T * eps * eigenvalues[-1]
    v = V[:, keep] @ ((V[:, keep].T @ n) / eigenvalues[keep])
    total = float(v.sum())
    if abs(total) < 1e-12:
        return np.zeros(T)
    return v / total


class IMTLG(Aggregator):
    """IMTL-G, the gradient half of Impartial Multi-Task Learning.

    Paper: "Towards Impartial Multi-task Learning", Liyang Liu, Yi Li, Zhanghui
    Kuang, Jing-Hao Xue, Yimin Chen, Wenming Yang, Qingmin Liao, Wayne Zhang,
    ICLR 2021, https://openreview.net/forum?id=IMPnRXEWpvr.

    Rule: ``α = K⁻¹n / (1ᵀK⁻¹n)`` (``n_i = ||g_i||``) and ``d = Σ α_i g_i``:
    the weights sum to 1 and ``d`` has the same projection on every unit task
    gradient ``g_i/||g_i||``. Weights may be negative. Both forms agree for
    linearly independent rows; they differ on degenerate input:

    - ``form='closed_form'`` (default; LibMTL's and the paper's closed form,
      written as one well-scaled bordered system): solves the equal-projection
      conditions themselves. T > d with rows that positively span their space
      gives ``d = 0`` with unique weights; zero rows get weight 0 (they have no
      direction to project on); identical rows share their weight equally; for
      collinear rows of different norms the conditions leave a free direction
      and the minimum-norm solution is taken. Accurate for norm ratios of 10⁶
      in float32 (rows are rescaled exactly by powers of two before solving).
    - ``form='pinv'`` (torchjd): ``v = pinv(K) n``, ``α = v/Σv``, or 0 when
      ``Σv`` vanishes (exactly opposite rows give ``d = 0`` with ``α = 0``).

    Output scale: weights sum to 1 (mean-like scale; ``d`` equals the common
    gradient when all rows are equal).

    Args:
        form: ``'closed_form'`` or ``'pinv'``, as above.
    """

    gramian_only = True
    _hyperparameters = ("form",)

    def __init__(self, form: str = "closed_form"):
        if form not in FORMS:
            raise ValueError(f"IMTLG form must be one of {FORMS}, got {form!r}")
        self.form = form

    def weights(self, gramian: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        K = gramian_to_numpy(gramian, task_ids)
        if self.form == "closed_form":
            return weights_like(imtl_closed_form(K, input_eps(gramian)), gramian)
        return weights_like(imtl_pinv(K, input_eps(gramian)), gramian)
