"""Random loss weighting (RLW): fresh random task weights at every step."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mtlcli.algorithms._loss_weighting import LossWeighting
from mtlcli.heads import MTLHeads


class RLW(LossWeighting):
    """Random Loss Weighting with softmax-normal weights.

    Paper: "Reasonable Effectiveness of Random Weighting: A Litmus Test for
    Multi-Task Learning", Baijiong Lin, Feiyang Ye, Yu Zhang, Ivor W. Tsang,
    TMLR 2022 (arXiv 2021). https://arxiv.org/abs/2111.10603

    Update rule: each step draws ``z ~ N(0, I_T)`` (one entry per task, from this
    module's own seeded generator) and uses ``lambda = softmax(z)`` restricted to
    the tasks present, ``L = sum_{t in T_b} lambda_t L_t``. Output scale: a convex
    combination (weights over the present tasks sum to 1); restricting the softmax
    to the present tasks gives them the same distribution as drawing for them
    alone. The generator state is part of the checkpoint, so a resumed run draws
    the same weights as an uninterrupted one.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        seed: seed of the weight generator; None uses torch.initial_seed(), i.e. the run's global seed.
    """

    def __init__(self, backbone: nn.Module, heads: MTLHeads, seed: int | None = None):
        super().__init__(backbone, heads)
        self.seed = int(seed) if seed is not None else torch.initial_seed()
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)

    def draw(self, task_ids) -> torch.Tensor:
        """Advance the generator by one step and return the weights of ``task_ids`` (on the CPU)."""
        z = torch.randn(self.num_tasks, generator=self.generator)
        return torch.softmax(z.index_select(0, self.slots(task_ids)), dim=0)

    def combine(self, task_losses: dict[int, torch.Tensor]) -> torch.Tensor:
        losses = self.stack(task_losses)
        w = self.draw(task_losses).to(device=losses.device, dtype=losses.dtype)
        return (w * losses).sum()

    def get_extra_state(self) -> dict[str, Any]:
        return {"generator_state": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator_state"])

    def extra_repr(self) -> str:
        return f"seed={self.seed}"
