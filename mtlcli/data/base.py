"""What the trainer sees of a dataset: task-labelled tensors held in memory.

A *task dataset* knows its tasks (ids from 1), each task's class count and the
common input shape without touching the disk, so configs can be checked
cheaply; :meth:`TaskDataset.setup` reads the files. After that, each task's
train/val/test split is a pair of tensors, and :meth:`TaskDataset.mixed`
concatenates several tasks into one task-labelled table that the mixed-task
batch sampler indexes.

:class:`MTLDataset` is what an ``mtl_dataset`` config instantiates: a task
dataset plus the batch size and sampling strategy the trainer uses.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from mtlcli.errors import ConfigError, MtlcliError

SPLITS = ("train", "val", "test")
SAMPLING_STRATEGIES = ("mixed",)


class MixedTensors(NamedTuple):
    """Rows of several tasks in one table: ``x[i]`` belongs to task ``task_id[i]``
    and has the task-local class ``y[i]``."""

    x: torch.Tensor        # float32 (N, C, H, W)
    y: torch.Tensor        # long (N,), 0..k_t-1 of the row's task
    task_id: torch.Tensor  # long (N,)


class TaskDataset:
    """Per-task classification data held in memory as tensors.

    Subclasses implement :attr:`task_ids`, :attr:`num_classes`, :attr:`input_shape`,
    :meth:`setup` and :meth:`_task_tensors`. Construction must stay cheap (no file
    access): config validation instantiates datasets without loading them.
    """

    @property
    def task_ids(self) -> list[int]:
        """Every task the dataset defines, ascending."""
        raise NotImplementedError

    @property
    def num_classes(self) -> dict[int, int]:
        """Task id -> number of classes of that task."""
        raise NotImplementedError

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one input, the same for every task."""
        raise NotImplementedError

    def setup(self) -> None:
        """Read the files and prepare the splits. Idempotent; every file error surfaces here."""
        raise NotImplementedError

    def _task_tensors(self, task_id: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def tensors(self, task_id: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of one task's split: x float32 (N, C, H, W), y long in 0..k-1.

        Calls :meth:`setup` first if needed.
        """
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        task_id = self._check_task(task_id)
        self.setup()
        return self._task_tensors(task_id, split)

    def mixed(self, task_ids: Sequence[int], split: str) -> MixedTensors:
        """The given tasks' ``split`` rows concatenated (in the order given), task-labelled."""
        ids = [self._check_task(t) for t in task_ids]
        if not ids:
            raise MtlcliError("no tasks to mix: the task list is empty")
        if len(set(ids)) != len(ids):
            raise MtlcliError(f"task list {ids} names a task more than once")
        xs, ys, ts = [], [], []
        for t in ids:
            x, y = self.tensors(t, split)
            xs.append(x)
            ys.append(y)
            ts.append(torch.full((len(y),), t, dtype=torch.long))
        return MixedTensors(torch.cat(xs), torch.cat(ys), torch.cat(ts))

    def _check_task(self, task_id: int) -> int:
        available = self.task_ids
        if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id not in available:
            raise MtlcliError(f"unknown task {task_id!r}: this dataset has tasks {available}")
        return int(task_id)


class MTLDataset(TaskDataset):
    """A task dataset as the trainer receives it: with its batch size and sampling strategy.

    Args:
        sampling_strategy: how training batches draw from the tasks; only ``mixed``
            (each batch mixes samples of all training tasks) is supported.
        batch_size: number of samples in one training batch (over all tasks, and
            over all processes when training is distributed).
    """

    def __init__(self, sampling_strategy: str = "mixed", batch_size: int = 64):
        if sampling_strategy not in SAMPLING_STRATEGIES:
            raise ConfigError(
                f"unsupported sampling_strategy {sampling_strategy!r}",
                hint=f"supported: {', '.join(SAMPLING_STRATEGIES)}",
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.sampling_strategy = sampling_strategy
        self.batch_size = batch_size
