"""MGDA: the minimum-norm point of the convex hull of the task gradients."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from mtlcli.algorithms.aggregators._base import Aggregator, check_matrix, gramian_to_numpy, input_eps, weights_like
from mtlcli.algorithms.aggregators._solvers import min_norm_weights

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


class MGDA(Aggregator):
    """Multiple-gradient descent: the min-norm element of the convex hull of the
    (optionally normalised) task gradients.

    Paper: "Multi-Task Learning as Multi-Objective Optimization", Ozan Sener and
    Vladlen Koltun, NeurIPS 2018, https://arxiv.org/abs/1810.04650 (the rule is
    Désidéri's MGDA, 2012).

    Rule: with ``ĝ_i = g_i / n_i`` (``n_i`` the normaliser below),
    ``s* = argmin_{s in simplex} ||Σ_i s_i ĝ_i||²`` and ``d = Σ_i s*_i ĝ_i``,
    i.e. weights ``w_i = s*_i / n_i`` on the original rows. Solved exactly
    (Lawson-Hanson NNLS on the lifted Gramian, float64), not by Frank-Wolfe.
    ``d`` has a non-negative inner product with every task gradient; ``d = 0``
    when 0 is in the hull (a zero row, opposite rows: Pareto-stationary).

    Output scale: a convex combination of the (normalised) gradients, so with
    ``normalization='none'`` the weights sum to 1 (mean-like scale, never larger
    than the largest gradient).

    Args:
        normalization: the gradient normaliser ``n_i``, as in LibMTL:
            ``'none'`` (1, the default), ``'l2'`` (``||g_i||``), ``'loss'``
            (the task's loss value), ``'loss+'`` (loss times ``||g_i||``). The
            loss variants need ``losses`` passed to the call. A zero gradient stays
            zero under ``'l2'``/``'loss+'`` (it has no direction).
    """

    gramian_only = True
    _hyperparameters = ("normalization",)

    def __init__(self, normalization: str = "none"):
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"MGDA normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.normalization = normalization

    def weights(
        self,
        gramian: Tensor,
        task_ids: Sequence[int] | None = None,
        losses: Tensor | Sequence[float] | None = None,
    ) -> Tensor:
        K = gramian_to_numpy(gramian, task_ids)
        inverse = self._inverse_normalizers(K, losses)
        scaled = K * inverse[:, None] * inverse[None, :]
        return weights_like(min_norm_weights(scaled, input_eps(gramian)) * inverse, gramian)

    def __call__(
        self,
        G: Tensor,
        task_ids: Sequence[int] | None = None,
        losses: Tensor | Sequence[float] | None = None,
    ) -> Tensor:
        check_matrix(G)
        return self.weights(G @ G.T, task_ids, losses) @ G

    def _inverse_normalizers(self, K: np.ndarray, losses) -> np.ndarray:
        T = len(K)
        if self.normalization == "none":
            return np.ones(T)
        norms = np.sqrt(np.maximum(np.diag(K), 0.0))
        if self.normalization == "l2":
            normalizer = norms
        else:
            if losses is None:
                raise ValueError(f"MGDA(normalization={self.normalization!r}) needs the task losses")
            loss = np.asarray([float(v) for v in losses], dtype=float)
            if loss.shape != (T,) or not np.isfinite(loss).all() or (loss <= 0).any():
                raise ValueError(f"MGDA loss normalisation needs {T} finite positive losses, got {loss.tolist()}")
            normalizer = loss if self.normalization == "loss" else loss * norms
        return np.divide(1.0, normalizer, out=np.zeros(T), where=normalizer > 0)
