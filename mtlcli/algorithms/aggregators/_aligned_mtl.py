"""Aligned-MTL: align the principal components of the task gradients."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from mtlcli.algorithms.aggregators._base import Aggregator, gramian_to_numpy, weights_like

REDUCTIONS = ("sum", "mean")
SCALE_MODES = ("min", "median", "rmse")
FLOAT32_EPS = 2.0**-23


def aligned_mtl_weights(K: np.ndarray, reduction: str, scale_mode: str, rank_eps: float) -> np.ndarray:
    T = len(K)
    eigenvalues, V = np.linalg.eigh(K)
    largest = float(eigenvalues[-1])
    keep = eigenvalues > largest * T * rank_eps
    if not largest > 0 or not keep.any():
        return np.zeros(T)
    kept, Vr = eigenvalues[keep], V[:, keep]
    if scale_mode == "min":
        scale = float(kept.min())
    elif scale_mode == "median":
        scale = float(np.median(kept))
    else:
        scale = float(kept.mean())
    B = np.sqrt(scale) * (Vr / np.sqrt(kept)) @ Vr.T
    preference = np.ones(T) if reduction == "sum" else np.full(T, 1.0 / T)
    return B @ preference


class AlignedMTL(Aggregator):
    """Aligned-MTL.

    Paper: "Independent Component Alignment for Multi-Task Learning", Dmitry
    Senushkin, Nikolay Patakin, Arseny Kuznetsov, Anton Konushin, CVPR 2023,
    https://arxiv.org/abs/2305.19000.

    Rule: ``K = V diag(l) Vᵀ``; keep the eigenpairs with
    ``l_k > l_max · T · rank_eps``; ``B = sqrt(s) V_r diag(l_r^-1/2) V_rᵀ``
    with ``s`` the scale below; ``α = B p`` and ``d = Gᵀα``. The aligned
    gradients ``BG`` have orthogonal rows of equal norm ``sqrt(s)`` (condition
    number 1). Rank-deficient input (identical, zero, opposite rows, T > d) is
    handled by the kept eigenpairs; exactly opposite rows give ``d = 0``.

    Output scale: ``reduction='sum'`` (default, LibMTL: ``p = 1``, the sum of
    the aligned gradients) or ``'mean'`` (torchjd: ``p = 1/T``); they differ by T.

    Args:
        reduction: ``'sum'`` or ``'mean'``.
        scale_mode: ``s`` is the smallest kept eigenvalue (``'min'``, default and
            the paper's choice), their median (``'median'``) or their mean
            (``'rmse'``: the root-mean-square singular value squared).
        rank_eps: relative eigenvalue threshold (default float32 epsilon
            2⁻²³ ≈ 1.19e-7 whatever the input precision, as in LibMTL; this
            decides the rank when the norms of the gradients differ by 10⁶).
    """

    gramian_only = True
    _hyperparameters = ("reduction", "scale_mode", "rank_eps")

    def __init__(self, reduction: str = "sum", scale_mode: str = "min", rank_eps: float = FLOAT32_EPS):
        if reduction not in REDUCTIONS:
            raise ValueError(f"AlignedMTL reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if scale_mode not in SCALE_MODES:
            raise ValueError(f"AlignedMTL scale_mode must be one of {SCALE_MODES}, got {scale_mode!r}")
        if not rank_eps >= 0:
            raise ValueError(f"AlignedMTL rank_eps must be >= 0, got {rank_eps}")
        self.reduction = reduction
        self.scale_mode = scale_mode
        self.rank_eps = float(rank_eps)

    def weights(self, gramian: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        K = gramian_to_numpy(gramian, task_ids)
        return weights_like(aligned_mtl_weights(K, self.reduction, self.scale_mode, self.rank_eps), gramian)
