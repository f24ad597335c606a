"""Shared shape of the loss-weighting methods: per-task losses in, one scalar out.

A loss-weighting method never looks at gradients: it maps the losses of the
tasks present in a batch (and its own state) to one differentiable scalar, and
one ordinary backward pass of that scalar is the update. Learned or remembered
per-task state is indexed by a task's *slot*, its position in
``heads.task_ids``, so a task missing from a batch simply has no slot in it.
"""

from __future__ import annotations

import torch
from torch import nn

from mtlcli.algorithms.base import MTLAlgorithm
from mtlcli.heads import MTLHeads


class LossWeighting(MTLAlgorithm):
    """Base for methods whose update is the gradient of one combined loss.

    Subclasses implement :meth:`combine`; :meth:`backward` differentiates it
    once, so the effective weight of task ``t`` is ``d combined / d L_t``.
    """

    def __init__(self, backbone: nn.Module, heads: MTLHeads):
        super().__init__(backbone, heads)
        self._slot_of = {t: i for i, t in enumerate(self.heads.task_ids)}

    @property
    def num_tasks(self) -> int:
        return len(self._slot_of)

    def slots(self, task_ids, device: torch.device | None = None) -> torch.Tensor:
        """Positions of ``task_ids`` in ``heads.task_ids`` (a long tensor)."""
        try:
            index = [self._slot_of[int(t)] for t in task_ids]
        except KeyError as err:
            raise KeyError(f"task {err.args[0]} has no head (heads: {self.heads.task_ids})") from None
        return torch.tensor(index, dtype=torch.long, device=device)

    @staticmethod
    def stack(task_losses: dict[int, torch.Tensor]) -> torch.Tensor:
        """The present tasks' losses as one vector, in the dict's order."""
        return torch.stack([loss.reshape(()) for loss in task_losses.values()])

    def combine(self, task_losses: dict[int, torch.Tensor]) -> torch.Tensor:
        """The scalar whose gradient is this step's update; may advance the method's state."""
        raise NotImplementedError

    def backward(self, task_losses: dict[int, torch.Tensor]) -> torch.Tensor:
        loss = self.combine(task_losses)
        loss.backward()
        return loss
