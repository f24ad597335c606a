"""Equal or static loss weights (EW): the fixed-weight baseline every paper compares to."""

from __future__ import annotations

import math

import torch
from torch import nn

from mtlcli.algorithms._loss_weighting import LossWeighting
from mtlcli.heads import MTLHeads


class EW(LossWeighting):
    """Equal weighting, or any fixed per-task weights (the linear scalarisation baseline).

    Paper: no single paper; the weighted sum of task losses is the baseline of
    every MTL comparison (e.g. LibMTL's ``EW``, which also sums with weight 1).

    Update rule: ``L = sum_{t in T_b} w_t L_t`` over the tasks present in the
    batch. Output scale: a **sum**; weights are used as given, not normalised
    (``weights=None`` gives every task weight 1, i.e. the plain sum of task
    losses; JointLearning is the mean). Pass weights that sum to 1 for a weighted
    mean.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        weights: one finite non-negative weight per task, in increasing task-id order; None gives every task weight 1.
    """

    def __init__(self, backbone: nn.Module, heads: MTLHeads, weights: list[float] | None = None):
        super().__init__(backbone, heads)
        if weights is None:
            values = [1.0] * self.num_tasks
        else:
            values = [float(w) for w in weights]
            if len(values) != self.num_tasks:
                raise ValueError(
                    f"EW weights has {len(values)} entries but there are {self.num_tasks} tasks "
                    f"{self.heads.task_ids}; give one weight per task"
                )
            bad = [w for w in values if not (math.isfinite(w) and w >= 0.0)]
            if bad:
                raise ValueError(f"EW weights must be finite and non-negative, got {bad[0]}")
        self.static_weights = weights is not None
        self.register_buffer("weights", torch.tensor(values, dtype=torch.float32))

    def combine(self, task_losses: dict[int, torch.Tensor]) -> torch.Tensor:
        losses = self.stack(task_losses)
        w = self.weights.index_select(0, self.slots(task_losses, self.weights.device))
        return (w.to(losses.dtype) * losses).sum()

    def extra_repr(self) -> str:
        if not self.static_weights:
            return "weights=None"
        return f"weights={[round(w, 6) for w in self.weights.tolist()]}"
