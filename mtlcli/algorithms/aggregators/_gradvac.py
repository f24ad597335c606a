"""GradVac: move each task gradient towards a target similarity with the others."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlcli.algorithms.aggregators._base import Aggregator, gramian_to_numpy, resolve_task_ids, weights_like
from mtlcli.algorithms.aggregators._visiting_order import VisitingOrder


def _gradvac_step(
    K: np.ndarray, phi_hat: np.ndarray, order: Sequence[Sequence[int]], beta: float, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """One GradVac step on rows of Gramian ``K`` from targets ``phi_hat`` (T x T).
    Returns the summed weights and the updated targets."""
    T = len(K)
    coefficients = np.eye(T)
    phi = phi_hat.copy()
    row_norms = np.sqrt(np.maximum(np.diag(K), 0.0))
    for i in range(T):
        c = coefficients[i]
        for j in order[i]:
            norm_p = math.sqrt(max(float(c @ K @ c), 0.0))
            norm_g = row_norms[j]
            rho = float(c @ K[:, j]) / (norm_p * norm_g + eps)
            target = phi[i, j]
            if rho < target and norm_g > 0:
                # A zero g_j is skipped: the correction would add a multiple of the zero vector.
                root_rho = math.sqrt(max(1.0 - rho * rho, 0.0))
                root_target = math.sqrt(max(1.0 - target * target, 0.0))
                c[j] += norm_p * (target * root_rho - rho * root_target) / (norm_g * root_target + eps)
            phi[i, j] = (1.0 - beta) * target + beta * rho
    return coefficients.sum(axis=0), phi


def gradvac_weights(
    gramian: Tensor, phi_hat: Tensor, order: Sequence[Sequence[int]], beta: float = 0.5, eps: float = 1e-8
) -> tuple[Tensor, Tensor]:
    """GradVac weights for an explicit visiting order and explicit targets
    (rows in row order); returns the weights and the updated targets (float64)."""
    K = gramian_to_numpy(gramian)
    w, phi = _gradvac_step(K, phi_hat.detach().cpu().double().numpy(), order, beta, eps)
    return weights_like(w, gramian), torch.from_numpy(phi)


class GradVac(Aggregator):
    """Gradient Vaccine.

    Paper: "Gradient Vaccine: Investigating and Improving Multi-task Optimization
    in Massively Multilingual Models", Zirui Wang, Yulia Tsvetkov, Orhan Firat,
    Yuan Cao, ICLR 2021, https://arxiv.org/abs/2010.05874.

    Rule (whole-model grouping, as LibMTL ``GradVac_group_type=0`` and torchjd):
    state ``phi_hat[i][j]``, an EMA target for the cosine between tasks i and j,
    starts at 0. For each task i, ``p_i = g_i``; for each other task j in the
    visiting order, ``rho = p_i·g_j / (||p_i|| ||g_j|| + eps)``; if
    ``rho < phi_hat[i][j]`` then ``p_i <- p_i + w g_j`` with
    ``w = ||p_i|| (t sqrt(1-rho²) - rho sqrt(1-t²)) / (||g_j|| sqrt(1-t²) + eps)``,
    ``t = phi_hat[i][j]``; always ``phi_hat[i][j] <- (1-beta) t + beta rho`` (the
    uncorrected rho). The direction is ``Σ_i p_i``. With targets 0 this is PCGrad.
    Computed as weights from the Gramian. The targets are keyed by task id, so a
    task missing from a batch keeps its targets. A zero ``g_j`` gets no
    correction (it could only add a multiple of the zero vector).

    Output scale: sum of the corrected task gradients.

    Args:
        beta: EMA rate of the targets (0.5, the reference default).
        eps: added to denominators (1e-8, the reference default).
        order: ``'index'`` (default, increasing task order) or ``'random'``
            (a fresh permutation per task and call, as in the references).
        seed: seed of the generator behind ``order='random'``.

    State: ``{"phi_hat": (N, N) float64 tensor}`` with entry ``[a-1, b-1]`` for
    task ids a, b (N the largest task id seen), plus the generator state when
    ``order='random'``.
    """

    gramian_only = True
    _hyperparameters = ("beta", "eps", "order", "seed")

    def __init__(self, beta: float = 0.5, eps: float = 1e-8, order: str = "index", seed: int = 0):
        if not 0 <= beta <= 1:
            raise ValueError(f"GradVac beta must be in [0, 1], got {beta}")
        if not eps >= 0:
            raise ValueError(f"GradVac eps must be >= 0, got {eps}")
        self.beta = float(beta)
        self.eps = float(eps)
        self.order = order
        self.seed = int(seed)
        self._order = VisitingOrder(order, seed)
        self._phi_hat = np.zeros((0, 0))

    def weights(self, gramian: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        K = gramian_to_numpy(gramian, task_ids)
        ids = resolve_task_ids(task_ids, len(K))
        self._grow(max(ids))
        rows = np.asarray(ids) - 1
        block = np.ix_(rows, rows)
        w, self._phi_hat[block] = _gradvac_step(K, self._phi_hat[block], self._order(len(K)), self.beta, self.eps)
        return weights_like(w, gramian)

    def _grow(self, size: int) -> None:
        if size > len(self._phi_hat):
            grown = np.zeros((size, size))
            grown[: len(self._phi_hat), : len(self._phi_hat)] = self._phi_hat
            self._phi_hat = grown

    def state_dict(self) -> dict[str, Any]:
        return {"phi_hat": torch.from_numpy(self._phi_hat.copy()), **self._order.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "phi_hat" not in state:  # a checkpoint from before any step
            self._phi_hat = np.zeros((0, 0))
            self._order.load_state_dict(state)
            return
        phi_hat = torch.as_tensor(state["phi_hat"]).detach().cpu().double().numpy()
        if phi_hat.ndim != 2 or phi_hat.shape[0] != phi_hat.shape[1]:
            raise ValueError(f"GradVac phi_hat must be a square matrix, got shape {phi_hat.shape}")
        self._phi_hat = phi_hat.copy()
        self._order.load_state_dict(state)
