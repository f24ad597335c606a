"""Mean of the task gradients."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtlcli.algorithms.aggregators._base import Aggregator, check_finite_rows, check_matrix, gramian_to_numpy


class Mean(Aggregator):
    """Average of the task gradients: ``d = (1/T) Σ_i g_i``.

    The baseline every gradient method is compared with (equal weighting).

    Output scale: mean of the task gradients (weights ``1/T``).

    No hyperparameters.
    """

    gramian_only = True

    def weights(self, gramian: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        gramian_to_numpy(gramian, task_ids)  # shape and finiteness checks
        T = gramian.shape[0]
        return torch.full((T,), 1.0 / T, dtype=gramian.dtype, device=gramian.device)

    def __call__(self, G: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        check_matrix(G)
        check_finite_rows(G, task_ids)
        return G.mean(dim=0)
