"""Fixed, seeded ways of cutting data into tasks and splits.

Every random choice here (validation rows, the digits' test rows, pixel
permutations) uses its own ``torch.Generator`` seeded from a documented
constant and the task id, never the global RNG: the same config gives the
same splits whatever ``global_seed`` the experiment trains with.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from mtlcli.errors import ConfigError

#: Seed of every validation split (the rows of a task's training data held out
#: as its validation set). Fixed so that splits never depend on the training seed.
VALIDATION_SEED = 42

#: Seed of the stratified train/test split of datasets without an official test set.
TEST_SPLIT_SEED = 0


def task_generator(seed: int, task_id: int) -> torch.Generator:
    """A generator whose stream depends only on ``(seed, task_id)``."""
    return torch.Generator().manual_seed((seed * 1_000_003 + task_id) % (2**63))


def split_count(n: int, fraction: float) -> int:
    """How many of ``n`` items a ``fraction`` takes: ``round(n * fraction)``.

    Rounding (not flooring) so that e.g. 29% of 100 is 29 despite float error.
    """
    return int(round(n * fraction))


def validation_split(
    indices: torch.Tensor, fraction: float, task_id: int, seed: int = VALIDATION_SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a task's training row ``indices`` into ``(train, val)``.

    A seeded random ``round(len * fraction)`` of the rows go to validation; both
    parts keep the original order of ``indices``.
    """
    n_val = split_count(len(indices), fraction)
    order = torch.randperm(len(indices), generator=task_generator(seed, task_id))
    is_val = torch.zeros(len(indices), dtype=torch.bool)
    is_val[order[:n_val]] = True
    return indices[~is_val], indices[is_val]


def stratified_test_split(
    labels: torch.Tensor, fraction: float, seed: int = TEST_SPLIT_SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices ``(train, test)``: ``round(n_c * fraction)`` seeded rows of each class c go to test."""
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    for c in torch.unique(labels).tolist():
        rows = (labels == c).nonzero().squeeze(1)
        order = torch.randperm(len(rows), generator=task_generator(seed, int(c)))
        is_test[rows[order[: split_count(len(rows), fraction)]]] = True
    return (~is_test).nonzero().squeeze(1), is_test.nonzero().squeeze(1)


def check_fraction(name: str, value: Any, allow_zero: bool = True) -> float:
    """``value`` as a float in [0, 1) (or (0, 1)), else a ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value < 1):
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise ConfigError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


def check_task_id(task_id: Any, what: str) -> int:
    if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id < 1:
        raise ConfigError(f"{what}: task ids must be integers >= 1, got {task_id!r}")
    return task_id


def check_class_split(class_split: Any, num_source_classes: int, source_name: str) -> dict[int, list[int]]:
    """Validate a ``{task_id: [class, ...]}`` mapping against a source with
    ``num_source_classes`` classes; return it as plain sorted-by-task dict."""
    if not isinstance(class_split, Mapping) or not class_split:
        raise ConfigError(
            f"class_split must be a non-empty mapping of task id to a list of classes, got {class_split!r}"
        )
    owner: dict[int, int] = {}
    result: dict[int, list[int]] = {}
    for task_id, classes in class_split.items():
        check_task_id(task_id, "class_split")
        if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
            raise ConfigError(f"class_split.{task_id}: task {task_id} must list its classes, got {classes!r}")
        classes = list(classes)
        if not classes:
            raise ConfigError(f"class_split.{task_id}: task {task_id} has no classes")
        for c in classes:
            if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < num_source_classes:
                raise ConfigError(
                    f"class_split.{task_id}: task {task_id} names class {c!r}, which {source_name} does not have "
                    f"(classes 0..{num_source_classes - 1})"
                )
            if c in owner:
                where = "twice" if owner[c] == task_id else f"in tasks {owner[c]} and {task_id}"
                raise ConfigError(f"class_split.{task_id}: class {c} appears {where}; tasks must not share classes")
            owner[c] = task_id
        result[task_id] = classes
    return dict(sorted(result.items()))


def check_num_tasks(num_tasks: Any) -> int:
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
        raise ConfigError(f"num_tasks must be an integer >= 1, got {num_tasks!r}")
    return num_tasks
