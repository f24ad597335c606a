"""Sum of the task gradients."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtlcli.algorithms.aggregators._base import Aggregator, check_finite_rows, check_matrix, gramian_to_numpy


class Sum(Aggregator):
    """Sum of the task gradients: ``d = Σ_i g_i``, the gradient of the summed loss.

    This is what LibMTL's "EW" applies (its weights are all 1, not 1/T).

    Output scale: sum of the task gradients (weights 1).

    No hyperparameters.
    """

    gramian_only = True

    def weights(self, gramian: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        gramian_to_numpy(gramian, task_ids)  # shape and finiteness checks
        return torch.ones(gramian.shape[0], dtype=gramian.dtype, device=gramian.device)

    def __call__(self, G: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        check_matrix(G)
        check_finite_rows(G, task_ids)
        return G.sum(dim=0)
