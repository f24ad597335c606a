"""Trainer internals: per-task train-metric sums exact across deferred flushes; stop signals."""

import torch

from mtlcli.algorithms.base import StepOutput
from mtlcli.engine.trainer import _TrainAccumulator
from mtlcli.heads import TaskLogits


def _random_step(generator, num_classes):
    batch = int(torch.randint(1, 12, (1,), generator=generator))
    task_id = torch.randint(1, len(num_classes) + 1, (batch,), generator=generator)
    y = torch.empty(batch, dtype=torch.long)
    outputs, losses = {}, {}
    for t in sorted(set(task_id.tolist())):
        index = (task_id == t).nonzero().squeeze(1)
        k = num_classes[t]
        y[index] = torch.randint(0, k, (len(index),), generator=generator)
        outputs[t] = TaskLogits(index, torch.randn(len(index), k, generator=generator))
        losses[t] = torch.rand((), generator=generator)
    return StepOutput(loss=torch.tensor(0.0), task_losses=losses, task_outputs=outputs), y


def test_sums_over_many_steps_equal_a_direct_count_whenever_they_are_read():
    num_classes = {1: 2, 2: 3, 3: 5}
    generator = torch.Generator().manual_seed(0)
    accumulator = _TrainAccumulator(sorted(num_classes), torch.device("cpu"))
    expected = {t: [0.0, 0, 0] for t in num_classes}
    steps = 3 * _TrainAccumulator.FLUSH_EVERY + 5  # crosses several flushes and ends between two
    for i in range(steps):
        step, y = _random_step(generator, num_classes)
        accumulator.update(step, y)
        for t, out in step.task_outputs.items():
            n = len(out.index)
            expected[t][0] += float(step.task_losses[t]) * n
            expected[t][1] += int((out.logits.argmax(1) == y[out.index]).sum())
            expected[t][2] += n
        if i in (7, 40):  # reading mid-way flushes early and changes nothing
            assert accumulator.sums[:, 2].sum() > 0
    results = {r.task_id: r for r in accumulator.results()}
    for t, (loss_sum, correct, count) in expected.items():
        assert results[t].num_samples == count
        assert abs(results[t].loss - loss_sum / count) < 1e-9
        assert abs(results[t].accuracy - correct / count) < 1e-12


def test_a_second_signal_waits_while_a_checkpoint_is_written_and_interrupts_otherwise():
    import signal

    import pytest

    from mtlcli.engine.trainer import _StopFlag

    stop = _StopFlag()
    stop._handle(signal.SIGTERM, None)
    assert stop.requested and stop.signum == signal.SIGTERM
    stop.writing = True
    stop._handle(signal.SIGINT, None)  # would tear the checkpoint: deferred
    stop.writing = False
    with pytest.raises(KeyboardInterrupt):
        stop._handle(signal.SIGINT, None)
