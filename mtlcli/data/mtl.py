"""The MTL datasets an ``mtl_dataset`` config instantiates.

- :class:`MTLDatasetFromCL`: the tasks of a continual-learning style dataset
  (class split or permutation), all trained together (CLArena's ``MTLDatasetFromCL``).
- :class:`CombinedMTLDataset`: one source per task (e.g. MNIST, FashionMNIST,
  KMNIST), with input shapes unified by ``resize`` and ``repeat_channels``.
"""

from __future__ import annotations

from typing import Any

import torch

from mtlcli.data.base import MTLDataset, TaskDataset
from mtlcli.data.sources import ImageSource, SourceData
from mtlcli.data.splits import check_fraction, check_task_id, validation_split
from mtlcli.data.task_rows import TaskRows
from mtlcli.data.transforms import apply_transforms, check_repeat_channels, check_resize, unified_shape
from mtlcli.errors import ConfigError


class MTLDatasetFromCL(MTLDataset):
    """Every task of a continual-learning style dataset, learned jointly.

    Args:
        cl_dataset: the task dataset that defines the tasks, e.g. ``mtlcli.data.SplitMNIST``.
        sampling_strategy: how training batches draw from the tasks; only ``mixed``
            (each batch mixes samples of all training tasks) is supported.
        batch_size: number of samples in one training batch (over all tasks, and
            over all processes when training is distributed).
    """

    def __init__(self, cl_dataset: TaskDataset, sampling_strategy: str = "mixed", batch_size: int = 64):
        super().__init__(sampling_strategy, batch_size)
        if not isinstance(cl_dataset, TaskDataset):
            raise ConfigError(
                f"cl_dataset must be a task dataset such as mtlcli.data.SplitMNIST, got {cl_dataset!r}"
            )
        self.cl_dataset = cl_dataset

    @property
    def task_ids(self) -> list[int]:
        return self.cl_dataset.task_ids

    @property
    def num_classes(self) -> dict[int, int]:
        return self.cl_dataset.num_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.cl_dataset.input_shape

    def setup(self) -> None:
        self.cl_dataset.setup()

    def _task_tensors(self, task_id: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cl_dataset.tensors(task_id, split)

    def __repr__(self) -> str:
        return (
            f"MTLDatasetFromCL(cl_dataset={self.cl_dataset!r}, sampling_strategy={self.sampling_strategy!r}, "
            f"batch_size={self.batch_size})"
        )
