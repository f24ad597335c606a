"""The MTL datasets an ``mtl_dataset`` config instantiates.

- :class:`MTLDatasetFromCL`: the tasks of a continual-learning style dataset
  (class split or permutation), all trained together (CLArena's ``MTLDatasetFromCL``).
- :class:`CombinedMTLDataset`: one source per task (e.g. MNIST, FashionMNIST,
  KMNIST), with input shapes unified by ``resize`` and ``repeat_channels``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


class CombinedMTLDataset(MTLDataset):
    """One source dataset per task, e.g. MNIST, FashionMNIST and KMNIST as tasks 1-3.

    Each task has all the classes of its source. Sources of different shapes are
    unified by ``resize`` and ``repeat_channels`` (applied to every task); if the tasks'
    shapes still differ, construction fails and names the shapes.

    Args:
        datasets: task id (an integer from 1) -> image source such as ``mtlcli.data.MNIST``;
            a list means tasks 1, 2, ... in order.
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        resize: ``[height, width]`` every task's images are resized to (bilinear), or null to keep them.
        repeat_channels: channel count every 1-channel image is repeated to (e.g. 3 to combine
            MNIST with CIFAR-10), or null.
        sampling_strategy: how training batches draw from the tasks; only ``mixed``
            (each batch mixes samples of all training tasks) is supported.
        batch_size: number of samples in one training batch (over all tasks, and
            over all processes when training is distributed).
    """

    def __init__(
        self,
        datasets: dict[int, ImageSource] | list[ImageSource],
        validation_percentage: float = 0.1,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
        sampling_strategy: str = "mixed",
        batch_size: int = 64,
    ):
        super().__init__(sampling_strategy, batch_size)
        # Mapping/Sequence rather than dict/list: composed configs may hand over their own containers.
        if isinstance(datasets, Mapping):
            sources = dict(datasets)
        elif isinstance(datasets, Sequence) and not isinstance(datasets, (str, bytes)):
            sources = {t: s for t, s in enumerate(datasets, start=1)}
        else:
            raise ConfigError(f"datasets must map task ids to image sources (or list them), got {datasets!r}")
        if not sources:
            raise ConfigError("datasets is empty: a combined dataset needs at least one task")
        for task_id, source in sources.items():
            check_task_id(task_id, "datasets")
            if not isinstance(source, ImageSource):
                raise ConfigError(
                    f"datasets: task {task_id} must be an image source such as mtlcli.data.MNIST, got {source!r}"
                )
        self.sources = dict(sorted(sources.items()))
        self.validation_percentage = check_fraction("validation_percentage", validation_percentage)
        self.resize = check_resize(resize)
        self.repeat_channels = check_repeat_channels(repeat_channels)
        shapes = {
            t: unified_shape(s.input_shape, self.resize, self.repeat_channels, f"task {t} ({s.name})")
            for t, s in self.sources.items()
        }
        if len(set(shapes.values())) > 1:
            listed = ", ".join(f"task {t} ({self.sources[t].name}) {'x'.join(map(str, s))}" for t, s in shapes.items())
            raise ConfigError(
                f"datasets have different input shapes: {listed}",
                hint="set resize: [height, width] and/or repeat_channels to make them equal",
            )
        self._input_shape = next(iter(shapes.values()))
        self._rows: dict[int, TaskRows] | None = None

    @property
    def task_ids(self) -> list[int]:
        return list(self.sources)

    @property
    def num_classes(self) -> dict[int, int]:
        return {t: s.num_classes for t, s in self.sources.items()}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    def setup(self) -> None:
        if self._rows is not None:
            return
        rows = {}
        for task_id, source in self.sources.items():
            raw = source.load()
            data = SourceData(
                apply_transforms(raw.train_x, self.resize, self.repeat_channels),
                raw.train_y,
                apply_transforms(raw.test_x, self.resize, self.repeat_channels),
                raw.test_y,
            )
            train, val = validation_split(torch.arange(len(data.train_y)), self.validation_percentage, task_id)
            rows[task_id] = TaskRows(data, train, val, torch.arange(len(data.test_y)))
        self._rows = rows

    def _task_tensors(self, task_id: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        assert self._rows is not None
        return self._rows[task_id].tensors(split)

    def __repr__(self) -> str:
        return (
            f"CombinedMTLDataset(datasets={self.sources}, validation_percentage={self.validation_percentage}, "
            f"resize={list(self.resize) if self.resize else None}, repeat_channels={self.repeat_channels}, "
            f"sampling_strategy={self.sampling_strategy!r}, batch_size={self.batch_size})"
        )
