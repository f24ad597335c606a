"""Per-task metrics are per-sample means, and a fresh accumulator starts empty."""

import torch

from mtlcli.engine.metrics import TaskMetrics, average
from mtlcli.heads import TaskLogits


def _batch(logits, labels, task):
    n = len(labels)
    return {task: TaskLogits(torch.arange(n), torch.tensor(logits, dtype=torch.float32))}, torch.tensor(labels)


def test_loss_and_accuracy_are_weighted_by_samples_not_batches():
    m = TaskMetrics({1: 2})
    out, y = _batch([[2.0, 0.0]] * 3, [0, 0, 0], 1)  # 3 correct, loss 1.0 each (given)
    m.update(out, y, {1: torch.tensor(1.0)})
    out, y = _batch([[2.0, 0.0]], [1], 1)  # 1 wrong, loss 5.0
    m.update(out, y, {1: torch.tensor(5.0)})
    (r,) = m.compute()
    assert r.num_samples == 4
    assert abs(r.loss - (3 * 1.0 + 5.0) / 4) < 1e-6  # per-batch mean would be 3.0
    assert abs(r.accuracy - 0.75) < 1e-6  # per-batch mean would be 0.5


def test_average_counts_each_task_once():
    m = TaskMetrics({1: 2, 2: 2})
    out, y = _batch([[1.0, 0.0]] * 9, [0] * 9, 1)
    m.update(out, y, {1: torch.tensor(0.5)})
    out, y = _batch([[1.0, 0.0]], [1], 2)
    m.update(out, y, {2: torch.tensor(1.5)})
    results = m.compute()
    mean = average(results)
    assert abs(mean.accuracy - (1.0 + 0.0) / 2) < 1e-6
    assert abs(mean.loss - (0.5 + 1.5) / 2) < 1e-6


def test_tasks_without_samples_are_left_out():
    m = TaskMetrics({1: 2, 2: 3})
    out, y = _batch([[1.0, 0.0]], [0], 1)
    m.update(out, y, {1: torch.tensor(0.1)})
    assert [r.task_id for r in m.compute()] == [1]
