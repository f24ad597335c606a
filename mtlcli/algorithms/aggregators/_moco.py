"""MoCo: tracked task gradients and a stochastic min-norm weighting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlcli.algorithms.aggregators._base import (
    Aggregator,
    check_finite_rows,
    check_matrix,
    column_blocks,
    resolve_task_ids,
)
from mtlcli.algorithms.aggregators._solvers import project_onto_simplex


class MoCo(Aggregator):
    """MoCo: Multi-objective gradient Correction.

    Paper: "Mitigating Gradient Bias in Multi-objective Learning: A Provably
    Convergent Approach", Heshan Devaka Fernando, Han Shen, Miao Liu, Subhajit
    Chaudhury, Keerthiram Murugesan, Tianyi Chen, ICLR 2023,
    https://arxiv.org/abs/2210.12624.

    Rule (the paper's Algorithm 1): each task keeps a tracked gradient
    ``y_i <- y_i - beta_k (y_i - g_i)``; the weights take one projected
    gradient step of the min-norm problem,
    ``λ <- Π_simplex(λ - gamma_k (YYᵀ + rho I) λ)``; the direction is ``d = Yᵀλ``.
    Step sizes ``beta_k = beta / k^beta_sigma`` and
    ``gamma_k = gamma / k^gamma_sigma``, where k counts the task's own updates
    (for ``y_i``) and the calls (for ``λ``). The Euclidean projection onto the
    simplex follows the paper (LibMTL uses a softmax instead; it also
    normalises gradients by their norm times the loss, which is not done here).

    State is keyed by task id. A task absent from a batch keeps its tracked
    gradient and weight; a new task starts with ``y_i = 0`` and weight ``1/T``
    (T the tasks of that batch); the weights of the tasks present are
    renormalised to the simplex before each step.

    Output scale: a convex combination of the tracked gradients (mean-like).

    Args:
        beta: tracking rate (0.5). beta_sigma: its decay exponent (0.5).
        gamma: weight step size (0.1). gamma_sigma: its decay exponent (0.5).
        rho: ridge added to the Gramian of the tracked gradients (0.0).
    """

    gramian_only = False
    _hyperparameters = ("beta", "beta_sigma", "gamma", "gamma_sigma", "rho")

    def __init__(
        self, beta: float = 0.5, beta_sigma: float = 0.5, gamma: float = 0.1, gamma_sigma: float = 0.5, rho: float = 0.0
    ):
        if not 0 < beta <= 1:
            raise ValueError(f"MoCo beta must be in (0, 1], got {beta}")
        for name, value in (("beta_sigma", beta_sigma), ("gamma", gamma), ("gamma_sigma", gamma_sigma), ("rho", rho)):
            if not value >= 0:
                raise ValueError(f"MoCo {name} must be >= 0, got {value}")
        self.beta = float(beta)
        self.beta_sigma = float(beta_sigma)
        self.gamma = float(gamma)
        self.gamma_sigma = float(gamma_sigma)
        self.rho = float(rho)
        self._reset()

    def _reset(self) -> None:
        self._task_ids: list[int] = []
        self._tracked: Tensor | None = None  # (N, d), rows in the order of _task_ids
        self._weights = np.zeros(0)  # λ per known task
        self._task_steps = np.zeros(0, dtype=np.int64)  # updates of each y_i
        self._step = 0  # calls, for gamma_k

    def __call__(self, G: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        check_matrix(G)
        check_finite_rows(G, task_ids)
        ids = resolve_task_ids(task_ids, G.shape[0])
        T = len(ids)
        rows = self._rows_for(ids, G)
        tracked = self._tracked
        assert tracked is not None

        self._task_steps[rows] += 1
        beta_k = torch.as_tensor(self.beta / self._task_steps[rows] ** self.beta_sigma, dtype=G.dtype, device=G.device)
        gram = self._track(tracked, rows, G.detach(), beta_k[:, None])

        self._step += 1
        gamma_k = self.gamma / self._step**self.gamma_sigma
        lam = self._weights[rows]
        lam = lam / lam.sum() if lam.sum() > 0 else np.full(T, 1.0 / T)
        lam = project_onto_simplex(lam - gamma_k * (gram + self.rho * np.eye(T)) @ lam)
        self._weights[rows] = lam
        # d = Σ_i λ_i y_i over the rows of the tracked matrix (absent tasks weigh 0)
        every = np.zeros(len(tracked))
        every[rows] = lam
        return torch.as_tensor(every, dtype=torch.float64).to(G.device, G.dtype) @ tracked

    @staticmethod
    def _track(tracked: Tensor, rows: np.ndarray, G: Tensor, beta_k: Tensor) -> np.ndarray:
        """``y_i <- y_i - beta_k (y_i - g_i)`` in place, in column blocks, and the
        Gramian of the updated ``y`` (rows in the order of ``G``, float64).

        One pass over the N x d state (``y + beta_k (g - y)`` as one ``lerp``)
        instead of a gather, three full-size temporaries and a scatter; each
        block's Gramian is summed in float64."""
        T = len(rows)
        in_order = bool((rows == np.arange(T)).all())
        index = None if in_order else torch.as_tensor(rows, device=G.device)
        blocks = column_blocks(G)
        width = blocks[0][1] if blocks else 0
        gathered = None if in_order else G.new_empty(T, width)
        gram = torch.zeros(T, T, dtype=torch.float64, device=G.device)
        for start, stop in blocks:
            n = stop - start
            if in_order:
                y = tracked[:T, start:stop]
            else:
                y = torch.index_select(tracked[:, start:stop], 0, index, out=gathered[:, :n])
            y.lerp_(G[:, start:stop], beta_k)
            if not in_order:
                tracked[:, start:stop].index_copy_(0, index, y)
            gram += y @ y.T
        return gram.cpu().numpy()

    def _rows_for(self, ids: list[int], G: Tensor) -> np.ndarray:
        d = G.shape[1]
        if self._tracked is None:
            self._tracked = G.new_zeros((0, d))
        elif self._tracked.shape[1] != d:
            raise ValueError(f"MoCo tracks gradients of size {self._tracked.shape[1]}, got {d}")
        self._tracked = self._tracked.to(device=G.device, dtype=G.dtype)
        new = [t for t in ids if t not in self._task_ids]
        if new:
            self._task_ids += new
            self._tracked = torch.cat([self._tracked, G.new_zeros((len(new), d))])
            self._weights = np.concatenate([self._weights, np.full(len(new), 1.0 / len(ids))])
            self._task_steps = np.concatenate([self._task_steps, np.zeros(len(new), dtype=np.int64)])
        position = {t: i for i, t in enumerate(self._task_ids)}
        return np.asarray([position[t] for t in ids])

    def state_dict(self) -> dict[str, Any]:
        if self._tracked is None:
            return {}
        return {
            "task_ids": torch.tensor(self._task_ids, dtype=torch.long),
            "tracked": self._tracked.detach().clone(),
            "weights": torch.from_numpy(self._weights.copy()),
            "task_steps": torch.from_numpy(self._task_steps.copy()),
            "step": torch.tensor(self._step, dtype=torch.long),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            self._reset()
            return
        self._task_ids = [int(t) for t in state["task_ids"].tolist()]
        self._tracked = state["tracked"].detach().clone()
        self._weights = state["weights"].detach().cpu().double().numpy().copy()
        self._task_steps = state["task_steps"].detach().cpu().numpy().astype(np.int64).copy()
        self._step = int(state["step"])
