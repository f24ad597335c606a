"""One task's view of a loaded source: which rows, which labels, which pixel order.

Tasks never copy their source at setup: a task is a few index tensors into the
source's (already transformed) images, an optional label map to its local
classes, and an optional pixel permutation. Its tensors are materialised on
request with ``index_select``, so ten permuted MNIST tasks cost ten permutations,
not ten copies of MNIST.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mtlcli.data.sources import SourceData


@dataclass(frozen=True)
class TaskRows:
    data: SourceData                          # the (transformed) source the rows index
    train: torch.Tensor                       # long row indices into data.train_x
    val: torch.Tensor                         # long row indices into data.train_x
    test: torch.Tensor                        # long row indices into data.test_x
    label_map: torch.Tensor | None = None     # source class -> task-local class (-1: not in task)
    permutation: torch.Tensor | None = None   # pixel order over H*W, shared by all channels

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split == "test":
            x_all, y_all, rows = self.data.test_x, self.data.test_y, self.test
        else:
            x_all, y_all = self.data.train_x, self.data.train_y
            rows = self.train if split == "train" else self.val
        x = x_all.index_select(0, rows)
        if self.permutation is not None:
            x = x.flatten(2).index_select(2, self.permutation).view(x.shape)
        y = y_all.index_select(0, rows)
        if self.label_map is not None:
            y = self.label_map.index_select(0, y)
        return x, y
