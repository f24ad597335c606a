"""The order in which PCGrad and GradVac visit the other tasks."""

from __future__ import annotations

from typing import Any

import torch

ORDERS = ("index", "random")


class VisitingOrder:
    """For each row i, the other rows in increasing index (``'index'``) or in a fresh
    random permutation drawn from a seeded generator (``'random'``, as in the
    papers). The generator state is checkpointed so a resumed run draws the
    same permutations."""

    def __init__(self, order: str, seed: int):
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        self.order = order
        self.seed = int(seed)
        self._generator = torch.Generator().manual_seed(self.seed) if order == "random" else None

    def __call__(self, num_rows: int) -> list[list[int]]:
        if self._generator is None:
            return [[j for j in range(num_rows) if j != i] for i in range(num_rows)]
        orders = []
        for i in range(num_rows):
            permutation = torch.randperm(num_rows, generator=self._generator).tolist()
            orders.append([j for j in permutation if j != i])
        return orders

    def state_dict(self) -> dict[str, Any]:
        return {} if self._generator is None else {"generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._generator is not None and "generator" in state:
            self._generator.set_state(state["generator"])
