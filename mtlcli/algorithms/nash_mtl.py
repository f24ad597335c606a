"""Nash-MTL: the Nash bargaining solution between the tasks' improvements."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtlcli.algorithms import aggregators
from mtlcli.algorithms.gradient_method import GradientMethod, Update
from mtlcli.algorithms.jacobian import GradientPath, TaskGradients
from mtlcli.heads import MTLHeads


class NashMTL(GradientMethod):
    """Nash-MTL, multi-task learning as a bargaining game.

    Paper: "Multi-Task Learning as a Bargaining Game", Aviv Navon, Aviv Shamsian,
    Idan Achituve, Haggai Maron, Kenji Kawaguchi, Gal Chechik, Ethan Fetaya,
    ICML 2022. https://arxiv.org/abs/2202.01017

    Update rule: ``α > 0`` with ``(Kα)_t = 1/α_t`` for every task present (K the
    Gramian), ``d = Σ_t α_t g_t``, then ``d`` is clipped to norm ``max_norm``. The
    bargaining system is solved exactly (damped Newton on its convex potential,
    float64); when no solution exists (0 in the convex hull of the gradients) it
    raises ``UndefinedAggregationError`` instead of falling back to equal weights as
    the reference code does. With ``update_weights_every = k > 1`` the weights are
    solved every k-th step and reused in between (keyed by task id; a task without
    a solved weight forces a new solve); clipping uses the current Gramian.

    Output scale: ``||d|| = sqrt(T)`` before clipping, so the default
    ``max_norm = 1`` always clips to norm 1.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        max_norm: clip ``||d||`` to this value (1.0, the reference's); 0 disables clipping.
        update_weights_every: solve the bargaining weights every this many steps (1: every step).
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    hyperparameters = ("max_norm", "update_weights_every")

    def __init__(self, backbone: nn.Module, heads: MTLHeads, max_norm: float = 1.0, update_weights_every: int = 1,
                 gradient_path: GradientPath = "auto"):
        if max_norm < 0:
            raise ValueError(f"NashMTL max_norm must be >= 0, got {max_norm}")
        if int(update_weights_every) < 1:
            raise ValueError(f"NashMTL update_weights_every must be >= 1, got {update_weights_every}")
        super().__init__(backbone, heads, aggregators.NashMTL(max_norm=0.0), gradient_path)
        self.max_norm = float(max_norm)
        self.update_weights_every = int(update_weights_every)
        self._step = 0
        self._solved: dict[int, float] = {}  # task id -> last solved weight

    def aggregate(self, grads: TaskGradients, losses: Tensor, task_ids: list[int]) -> Update:
        K = grads.gramian
        solve = self._step % self.update_weights_every == 0 or any(t not in self._solved for t in task_ids)
        self._step += 1
        if solve:
            alpha = self.aggregator.weights(K, task_ids)
            self._solved.update(zip(task_ids, alpha.tolist()))
        else:
            alpha = torch.tensor([self._solved[t] for t in task_ids], dtype=K.dtype, device=K.device)
        if self.max_norm > 0:
            norm = (alpha @ K @ alpha).clamp_min(0).sqrt()
            if bool(norm > self.max_norm):
                alpha = alpha * (self.max_norm / norm)
        return Update(weights=alpha)

    def method_state(self) -> dict:
        ids = sorted(self._solved)
        return {"step": self._step, "task_ids": torch.tensor(ids, dtype=torch.long),
                "weights": torch.tensor([self._solved[t] for t in ids], dtype=torch.float64)}

    def load_method_state(self, state: dict) -> None:
        self._step = int(state.get("step", 0))
        if "task_ids" in state:
            self._solved = dict(zip(state["task_ids"].tolist(), state["weights"].tolist()))
