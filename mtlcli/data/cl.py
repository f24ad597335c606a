"""Continual-learning style task datasets (CLArena's shapes) built from one source.

- :class:`SplitDataset`: each task sees a subset of the source's classes
  (``class_split``), remapped to 0..k-1 in the order listed.
- :class:`PermutedDataset`: each task sees every class of the source with its
  own fixed, seeded pixel permutation.

Each task's training rows are split once into train and validation
(``validation_percentage``, seeded with ``splits.VALIDATION_SEED`` and the task
id); the test rows are the source's test rows of the task's classes. The named
classes (``SplitMNIST``, ``PermutedDigits``, ...) only pick the source.
"""

from __future__ import annotations

from typing import Any

import torch

from mtlcli.data.base import TaskDataset
from mtlcli.data.sources import (
    CIFAR10,
    CIFAR100,
    EMNIST,
    MNIST,
    Digits,
    FashionMNIST,
    ImageSource,
    KMNIST,
    SourceData,
)
from mtlcli.data.splits import (
    check_class_split,
    check_fraction,
    check_num_tasks,
    task_generator,
    validation_split,
)
from mtlcli.data.task_rows import TaskRows
from mtlcli.data.transforms import (
    apply_transforms,
    check_repeat_channels,
    check_resize,
    unified_shape,
)
from mtlcli.errors import ConfigError, MtlcliError


class CLDataset(TaskDataset):
    """A task dataset over one source, with optional resize / channel repetition of its images."""

    def __init__(
        self,
        source: ImageSource,
        validation_percentage: float,
        resize: Any = None,
        repeat_channels: int | None = None,
    ):
        if not isinstance(source, ImageSource):
            raise ConfigError(f"source must be an image source such as mtlcli.data.MNIST, got {source!r}")
        self.source = source
        self.validation_percentage = check_fraction("validation_percentage", validation_percentage)
        self.resize = check_resize(resize)
        self.repeat_channels = check_repeat_channels(repeat_channels)
        self._input_shape = unified_shape(source.input_shape, self.resize, self.repeat_channels, source.name)
        self._rows: dict[int, TaskRows] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    def setup(self) -> None:
        if self._rows is not None:
            return
        raw = self.source.load()
        data = SourceData(
            apply_transforms(raw.train_x, self.resize, self.repeat_channels),
            raw.train_y,
            apply_transforms(raw.test_x, self.resize, self.repeat_channels),
            raw.test_y,
        )
        self._rows = {t: self._task_rows(t, data) for t in self.task_ids}

    def _task_rows(self, task_id: int, data: SourceData) -> TaskRows:
        raise NotImplementedError

    def _task_tensors(self, task_id: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        assert self._rows is not None
        return self._rows[task_id].tensors(split)

    def _transform_repr(self) -> str:
        parts = []
        if self.resize is not None:
            parts.append(f", resize={list(self.resize)}")
        if self.repeat_channels is not None:
            parts.append(f", repeat_channels={self.repeat_channels}")
        return "".join(parts)


class SplitDataset(CLDataset):
    """Tasks that each see a disjoint subset of one source's classes.

    Task ``t`` holds the samples whose class is in ``class_split[t]``; its labels are
    the positions in that list (``{2: [7, 3]}`` makes 7 -> 0 and 3 -> 1 for task 2).
    Tasks may have different numbers of classes.

    Args:
        source: the image source whose classes are split, e.g. ``mtlcli.data.MNIST``.
        class_split: task id (an integer from 1) -> the source classes that task sees.
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        resize: ``[height, width]`` to resize images to (bilinear), or null to keep them.
        repeat_channels: channel count to repeat 1-channel images to (e.g. 3), or null.
    """

    def __init__(
        self,
        source: ImageSource,
        class_split: dict[int, list[int]],
        validation_percentage: float = 0.1,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
    ):
        super().__init__(source, validation_percentage, resize, repeat_channels)
        self.class_split = check_class_split(class_split, source.num_classes, source.name)

    @property
    def task_ids(self) -> list[int]:
        return list(self.class_split)

    @property
    def num_classes(self) -> dict[int, int]:
        return {t: len(classes) for t, classes in self.class_split.items()}

    def _task_rows(self, task_id: int, data: SourceData) -> TaskRows:
        classes = torch.tensor(self.class_split[task_id], dtype=torch.long)
        label_map = torch.full((self.source.num_classes,), -1, dtype=torch.long)
        label_map[classes] = torch.arange(len(classes))
        train_rows = torch.isin(data.train_y, classes).nonzero().squeeze(1)
        if len(train_rows) == 0:
            raise MtlcliError(
                f"task {task_id} has no training samples: classes {classes.tolist()} do not occur in "
                f"{self.source.name}'s training data"
            )
        train, val = validation_split(train_rows, self.validation_percentage, task_id)
        test = torch.isin(data.test_y, classes).nonzero().squeeze(1)
        return TaskRows(data, train, val, test, label_map=label_map)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(source={self.source!r}, class_split={self.class_split}, "
            f"validation_percentage={self.validation_percentage}{self._transform_repr()})"
        )


class PermutedDataset(CLDataset):
    """Tasks that each see all of one source, with their own fixed pixel permutation.

    Task ``t``'s permutation of the H*W pixel positions (the same for every channel,
    applied after any resize) is ``torch.randperm`` drawn from a generator seeded with
    ``permutation_seed * 1_000_003 + t``: fixed for a given seed, different between
    tasks. Task 1 is permuted too unless ``identity_first_task`` is set, in which case
    task 1 sees the original images. Every task has all the source's classes.

    Args:
        source: the image source to permute, e.g. ``mtlcli.data.MNIST``.
        num_tasks: number of tasks (ids 1..num_tasks).
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        permutation_seed: seed of the tasks' pixel permutations.
        identity_first_task: leave task 1's images unpermuted.
        resize: ``[height, width]`` to resize images to (bilinear), or null to keep them.
        repeat_channels: channel count to repeat 1-channel images to (e.g. 3), or null.
    """

    def __init__(
        self,
        source: ImageSource,
        num_tasks: int,
        validation_percentage: float = 0.1,
        permutation_seed: int = 0,
        identity_first_task: bool = False,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
    ):
        super().__init__(source, validation_percentage, resize, repeat_channels)
        self.num_tasks = check_num_tasks(num_tasks)
        if isinstance(permutation_seed, bool) or not isinstance(permutation_seed, int):
            raise ConfigError(f"permutation_seed must be an integer, got {permutation_seed!r}")
        self.permutation_seed = permutation_seed
        self.identity_first_task = bool(identity_first_task)

    @property
    def task_ids(self) -> list[int]:
        return list(range(1, self.num_tasks + 1))

    @property
    def num_classes(self) -> dict[int, int]:
        return {t: self.source.num_classes for t in self.task_ids}

    def permutation(self, task_id: int) -> torch.Tensor | None:
        """Task ``task_id``'s pixel order over H*W (None: identity). Needs no data."""
        if self.identity_first_task and task_id == 1:
            return None
        _, h, w = self.input_shape
        return torch.randperm(h * w, generator=task_generator(self.permutation_seed, task_id))

    def _task_rows(self, task_id: int, data: SourceData) -> TaskRows:
        train, val = validation_split(torch.arange(len(data.train_y)), self.validation_percentage, task_id)
        test = torch.arange(len(data.test_y))
        return TaskRows(data, train, val, test, permutation=self.permutation(task_id))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(source={self.source!r}, num_tasks={self.num_tasks}, "
            f"validation_percentage={self.validation_percentage}, permutation_seed={self.permutation_seed}, "
            f"identity_first_task={self.identity_first_task}{self._transform_repr()})"
        )


# -- named datasets: the source is fixed by the class ---------------------------------


class SplitDigits(SplitDataset):
    """Class-split tasks over the embedded UCI handwritten digits (8x8, no files needed).

    Args:
        class_split: task id (an integer from 1) -> the digit classes (0-9) that task sees.
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        test_percentage: fraction of each digit class held out as the test set (fixed, seeded), in (0, 1).
        resize: ``[height, width]`` to resize images to (bilinear), or null to keep 8x8.
        repeat_channels: channel count to repeat the 1-channel images to (e.g. 3), or null.
    """

    def __init__(
        self,
        class_split: dict[int, list[int]],
        validation_percentage: float = 0.1,
        test_percentage: float = 0.2,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
    ):
        super().__init__(Digits(test_percentage), class_split, validation_percentage, resize, repeat_channels)


class PermutedDigits(PermutedDataset):
    """Permuted-pixel tasks over the embedded UCI handwritten digits (8x8, no files needed).

    Args:
        num_tasks: number of tasks (ids 1..num_tasks).
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        permutation_seed: seed of the tasks' pixel permutations.
        identity_first_task: leave task 1's images unpermuted.
        test_percentage: fraction of each digit class held out as the test set (fixed, seeded), in (0, 1).
        resize: ``[height, width]`` to resize images to (bilinear), or null to keep 8x8.
        repeat_channels: channel count to repeat the 1-channel images to (e.g. 3), or null.
    """

    def __init__(
        self,
        num_tasks: int,
        validation_percentage: float = 0.1,
        permutation_seed: int = 0,
        identity_first_task: bool = False,
        test_percentage: float = 0.2,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
    ):
        super().__init__(
            Digits(test_percentage), num_tasks, validation_percentage, permutation_seed,
            identity_first_task, resize, repeat_channels,
        )


class SplitMNIST(SplitDataset):
    """Class-split tasks over MNIST digits (28x28, 10 classes).

    Args:
        root: folder holding the MNIST IDX files (raw or ``.gz``), directly or in ``raw/``, ``MNIST/``
            or ``MNIST/raw/``.
        class_split: task id (an integer from 1) -> the classes that task sees.
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        resize: ``[height, width]`` to resize images to (bilinear), or null to keep them.
        repeat_channels: channel count to repeat 1-channel images to (e.g. 3), or null.
    """

    def __init__(
        self,
        root: str,
        class_split: dict[int, list[int]],
        validation_percentage: float = 0.1,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
    ):
        super().__init__(MNIST(root), class_split, validation_percentage, resize, repeat_channels)


class SplitFashionMNIST(SplitDataset):
    """Class-split tasks over Fashion-MNIST (28x28, 10 classes).

    Args:
        root: folder holding the Fashion-MNIST IDX files (raw or ``.gz``), directly or in ``raw/``,
            ``FashionMNIST/`` or ``FashionMNIST/raw/``.
        class_split: task id (an integer from 1) -> the classes that task sees.
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        resize: ``[height, width]`` to resize images to (bilinear), or null to keep them.
        repeat_channels: channel count to repeat 1-channel images to (e.g. 3), or null.
    """

    def __init__(
        self,
        root: str,
        class_split: dict[int, list[int]],
        validation_percentage: float = 0.1,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
    ):
        super().__init__(FashionMNIST(root), class_split, validation_percentage, resize, repeat_channels)


class SplitKMNIST(SplitDataset):
    """Class-split tasks over Kuzushiji-MNIST (28x28, 10 classes).

    Args:
        root: folder holding the KMNIST IDX files (raw or ``.gz``), directly or in ``raw/``, ``KMNIST/``
            or ``KMNIST/raw/``.
        class_split: task id (an integer from 1) -> the classes that task sees.
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        resize: ``[height, width]`` to resize images to (bilinear), or null to keep them.
        repeat_channels: channel count to repeat 1-channel images to (e.g. 3), or null.
    """

    def __init__(
        self,
        root: str,
        class_split: dict[int, list[int]],
        validation_percentage: float = 0.1,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
    ):
        super().__init__(KMNIST(root), class_split, validation_percentage, resize, repeat_channels)


class SplitEMNIST(SplitDataset):
    """Class-split tasks over EMNIST characters (28x28; classes depend on ``split``).

    Args:
        root: folder holding the ``emnist-<split>-*`` IDX files (raw or ``.gz``), directly or in
            ``raw/``, ``EMNIST/raw/`` (or their ``gzip/``).
        class_split: task id (an integer from 1) -> the classes that task sees.
        split: EMNIST split: ``byclass``, ``bymerge``, ``balanced``, ``letters``, ``digits`` or ``mnist``.
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        resize: ``[height, width]`` to resize images to (bilinear), or null to keep them.
        repeat_channels: channel count to repeat 1-channel images to (e.g. 3), or null.
    """

    def __init__(
        self,
        root: str,
        class_split: dict[int, list[int]],
        split: str = "balanced",
        validation_percentage: float = 0.1,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
    ):
        super().__init__(EMNIST(root, split), class_split, validation_percentage, resize, repeat_channels)


class SplitCIFAR10(SplitDataset):
    """Class-split tasks over CIFAR-10 (3x32x32, 10 classes).

    Args:
        root: folder holding ``cifar-10-batches-py/`` (the python pickle batches), or that folder itself.
        class_split: task id (an integer from 1) -> the classes that task sees.
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        resize: ``[height, width]`` to resize images to (bilinear), or null to keep them.
        repeat_channels: channel count to repeat 1-channel images to (e.g. 3), or null.
    """

    def __init__(
        self,
        root: str,
        class_split: dict[int, list[int]],
        validation_percentage: float = 0.1,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
    ):
        super().__init__(CIFAR10(root), class_split, validation_percentage, resize, repeat_channels)


class SplitCIFAR100(SplitDataset):
    """Class-split tasks over CIFAR-100 (3x32x32, 100 fine classes).

    Args:
        root: folder holding ``cifar-100-python/`` (the python pickle files), or that folder itself.
        class_split: task id (an integer from 1) -> the classes that task sees.
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        resize: ``[height, width]`` to resize images to (bilinear), or null to keep them.
        repeat_channels: channel count to repeat 1-channel images to (e.g. 3), or null.
    """

    def __init__(
        self,
        root: str,
        class_split: dict[int, list[int]],
        validation_percentage: float = 0.1,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
    ):
        super().__init__(CIFAR100(root), class_split, validation_percentage, resize, repeat_channels)


class PermutedMNIST(PermutedDataset):
    """Permuted-pixel tasks over MNIST digits (28x28, 10 classes).

    Args:
        root: folder holding the MNIST IDX files (raw or ``.gz``), directly or in ``raw/``, ``MNIST/``
            or ``MNIST/raw/``.
        num_tasks: number of tasks (ids 1..num_tasks).
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        permutation_seed: seed of the tasks' pixel permutations.
        identity_first_task: leave task 1's images unpermuted.
        resize: ``[height, width]`` to resize images to (bilinear), or null to keep them.
        repeat_channels: channel count to repeat 1-channel images to (e.g. 3), or null.
    """

    def __init__(
        self,
        root: str,
        num_tasks: int,
        validation_percentage: float = 0.1,
        permutation_seed: int = 0,
        identity_first_task: bool = False,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
    ):
        super().__init__(
            MNIST(root), num_tasks, validation_percentage, permutation_seed, identity_first_task,
            resize, repeat_channels,
        )


class PermutedFashionMNIST(PermutedDataset):
    """Permuted-pixel tasks over Fashion-MNIST (28x28, 10 classes).

    Args:
        root: folder holding the Fashion-MNIST IDX files (raw or ``.gz``), directly or in ``raw/``,
            ``FashionMNIST/`` or ``FashionMNIST/raw/``.
        num_tasks: number of tasks (ids 1..num_tasks).
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        permutation_seed: seed of the tasks' pixel permutations.
        identity_first_task: leave task 1's images unpermuted.
        resize: ``[height, width]`` to resize images to (bilinear), or null to keep them.
        repeat_channels: channel count to repeat 1-channel images to (e.g. 3), or null.
    """

    def __init__(
        self,
        root: str,
        num_tasks: int,
        validation_percentage: float = 0.1,
        permutation_seed: int = 0,
        identity_first_task: bool = False,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
    ):
        super().__init__(
            FashionMNIST(root), num_tasks, validation_percentage, permutation_seed, identity_first_task,
            resize, repeat_channels,
        )


class PermutedKMNIST(PermutedDataset):
    """Permuted-pixel tasks over Kuzushiji-MNIST (28x28, 10 classes).

    Args:
        root: folder holding the KMNIST IDX files (raw or ``.gz``), directly or in ``raw/``, ``KMNIST/``
            or ``KMNIST/raw/``.
        num_tasks: number of tasks (ids 1..num_tasks).
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        permutation_seed: seed of the tasks' pixel permutations.
        identity_first_task: leave task 1's images unpermuted.
        resize: ``[height, width]`` to resize images to (bilinear), or null to keep them.
        repeat_channels: channel count to repeat 1-channel images to (e.g. 3), or null.
    """

    def __init__(
        self,
        root: str,
        num_tasks: int,
        validation_percentage: float = 0.1,
        permutation_seed: int = 0,
        identity_first_task: bool = False,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
    ):
        super().__init__(
            KMNIST(root), num_tasks, validation_percentage, permutation_seed, identity_first_task,
            resize, repeat_channels,
        )


class PermutedEMNIST(PermutedDataset):
    """Permuted-pixel tasks over EMNIST characters (28x28; classes depend on ``split``).

    Args:
        root: folder holding the ``emnist-<split>-*`` IDX files (raw or ``.gz``), directly or in
            ``raw/``, ``EMNIST/raw/`` (or their ``gzip/``).
        num_tasks: number of tasks (ids 1..num_tasks).
        split: EMNIST split: ``byclass``, ``bymerge``, ``balanced``, ``letters``, ``digits`` or ``mnist``.
        validation_percentage: fraction of each task's training samples held out for validation, in [0, 1).
        permutation_seed: seed of the tasks' pixel permutations.
        identity_first_task: leave task 1's images unpermuted.
        resize: ``[height, width]`` to resize images to (bilinear), or null to keep them.
        repeat_channels: channel count to repeat 1-channel images to (e.g. 3), or null.
    """

    def __init__(
        self,
        root: str,
        num_tasks: int,
        split: str = "balanced",
        validation_percentage: float = 0.1,
        permutation_seed: int = 0,
        identity_first_task: bool = False,
        resize: list[int] | None = None,
        repeat_channels: int | None = None,
    ):
        super().__init__(
            EMNIST(root, split), num_tasks, validation_percentage, permutation_seed, identity_first_task,
            resize, repeat_channels,
        )
