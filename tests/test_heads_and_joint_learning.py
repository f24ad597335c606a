"""Heads on mixed batches and JointLearning's loss, checked against hand computations."""

import torch
import torch.nn.functional as F

from mtlcli.algorithms import JointLearning
from mtlcli.backbones import MLP
from mtlcli.heads import MTLHeads


def _model(num_classes, seed=0):
    torch.manual_seed(seed)
    return JointLearning(MLP(16, [8], 6), MTLHeads(6, num_classes))


def test_heads_route_each_row_to_its_task_with_different_class_counts():
    heads = MTLHeads(4, {1: 2, 2: 3})
    features = torch.randn(5, 4)
    task_id = torch.tensor([2, 1, 2, 1, 2])
    out = heads(features, task_id)
    assert sorted(out) == [1, 2]
    assert out[1].index.tolist() == [1, 3] and out[1].logits.shape == (2, 2)
    assert out[2].index.tolist() == [0, 2, 4] and out[2].logits.shape == (3, 3)
    expected = heads.head(2)(features[[0, 2, 4]])
    torch.testing.assert_close(out[2].logits, expected)


def test_batch_missing_a_task_only_touches_present_heads():
    model = _model({1: 2, 2: 3, 3: 2})
    x = torch.randn(4, 16)
    y = torch.tensor([0, 1, 2, 0])
    task_id = torch.tensor([1, 1, 2, 2])  # task 3 absent
    step = model.training_step(x, y, task_id)
    assert sorted(step.task_losses) == [1, 2]
    assert model.heads.head(3).weight.grad is None
    assert model.heads.head(1).weight.grad is not None
    assert torch.isfinite(step.loss)


def test_joint_learning_loss_is_mean_of_per_task_cross_entropy():
    model = _model({1: 2, 2: 3})
    x = torch.randn(7, 16)
    task_id = torch.tensor([1, 2, 2, 1, 2, 2, 2])
    y = torch.tensor([0, 2, 1, 1, 0, 2, 1])
    step = model.training_step(x, y, task_id)

    # by hand: each task's head on its own rows, mean CE per task, mean over tasks
    with torch.no_grad():
        feats = model.backbone(x)
        rows1, rows2 = [0, 3], [1, 2, 4, 5, 6]
        ce1 = F.cross_entropy(model.heads.head(1)(feats[rows1]), y[rows1])
        ce2 = F.cross_entropy(model.heads.head(2)(feats[rows2]), y[rows2])
    torch.testing.assert_close(step.task_losses[1], ce1)
    torch.testing.assert_close(step.task_losses[2], ce2)
    torch.testing.assert_close(step.loss, (ce1 + ce2) / 2)
    # not the per-sample mean over the whole batch (which would weight task 2 by 5/7)
    assert not torch.allclose(step.loss, (2 * ce1 + 5 * ce2) / 7)


def test_joint_learning_gradient_matches_autograd_of_hand_loss():
    model = _model({1: 2, 2: 3})
    x = torch.randn(6, 16)
    task_id = torch.tensor([1, 2, 1, 2, 2, 1])
    y = torch.tensor([1, 2, 0, 0, 1, 1])
    model.training_step(x, y, task_id)
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    feats = model.backbone(x)
    m1, m2 = task_id == 1, task_id == 2
    loss = (F.cross_entropy(model.heads.head(1)(feats[m1]), y[m1]) + F.cross_entropy(model.heads.head(2)(feats[m2]), y[m2])) / 2
    loss.backward()
    for g, p in zip(got, model.parameters()):
        torch.testing.assert_close(g, p.grad)


def test_non_finite_loss_raises_with_task_id():
    from mtlcli.algorithms import NonFiniteLossError

    model = _model({1: 2, 2: 2})
    x = torch.randn(4, 16)
    x[2] = float("nan")
    task_id = torch.tensor([1, 1, 2, 2])
    y = torch.tensor([0, 1, 0, 1])
    try:
        model.training_step(x, y, task_id)
    except NonFiniteLossError as err:
        assert err.task_id == 2
    else:
        raise AssertionError("expected NonFiniteLossError")
