"""The Gramian both UPGrad and DualProj project with."""

from __future__ import annotations

import numpy as np


def regularized_gramian(K: np.ndarray, reg_eps: float, norm_eps: float) -> np.ndarray:
    """``K`` itself when ``reg_eps == 0`` (the exact rule), else torchjd's
    ``K / tr(K) + reg_eps I`` (``K / tr(K)`` replaced by 0 when ``tr(K) < norm_eps``)."""
    if reg_eps == 0:
        return K
    trace = float(np.trace(K))
    base = K / trace if trace >= norm_eps else np.zeros_like(K)
    return base + reg_eps * np.eye(len(K))


def check_eps(reg_eps: float, norm_eps: float) -> None:
    if not reg_eps >= 0:
        raise ValueError(f"reg_eps must be >= 0, got {reg_eps}")
    if not norm_eps >= 0:
        raise ValueError(f"norm_eps must be >= 0, got {norm_eps}")
