"""Every per-task gradient path equals the plain per-task loop (float32 tolerance)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtlcli.algorithms.base import MTLAlgorithm
from mtlcli.algorithms.jacobian import TaskGradientEngine, per_task_jacobian_loop
from mtlcli.backbones.mlp import MLP
from mtlcli.errors import MtlcliError
from mtlcli.heads import MTLHeads

ATOL = 1e-5


class SmallCNN(nn.Module):
    """Conv2d (with and without bias, strided, grouped) then Linear."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),
            nn.Conv2d(4, 4, 3, stride=2, groups=2, bias=False), nn.Tanh(),
            nn.Flatten(), nn.Linear(4 * 2 * 2, 6),
        )
        self.output_dim = 6

    def forward(self, x):
        return self.net(x)


class TokenMLP(nn.Module):
    """A Linear applied to (B, N, F) inputs: the per-task route without a B x B kernel."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(5, 7)
        self.out = nn.Linear(7, 6)
        self.output_dim = 6

    def forward(self, x):
        return self.out(torch.relu(self.proj(x.view(x.shape[0], 3, 5))).mean(1))


class InplaceMLP(nn.Module):
    """In-place ReLU overwrites a Linear output: the fast path must notice and step aside."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(15, 8), nn.ReLU(inplace=True), nn.Linear(8, 6))
        self.output_dim = 6

    def forward(self, x):
        return self.net(x)


def make(backbone_kind: str, num_classes=None, seed=0):
    torch.manual_seed(seed)
    num_classes = num_classes or {1: 2, 2: 3, 3: 5}
    if backbone_kind == "mlp":
        backbone, shape = MLP(15, [12, 10], 6), (15,)
    elif backbone_kind == "mlp_bn":
        backbone, shape = MLP(15, [12, 10], 6, batch_normalization=True), (15,)
    elif backbone_kind == "cnn":
        backbone, shape = SmallCNN(), (2, 5, 5)
    elif backbone_kind == "tokens":
        backbone, shape = TokenMLP(), (15,)
    elif backbone_kind == "inplace":
        backbone, shape = InplaceMLP(), (15,)
    heads = MTLHeads(backbone.output_dim, num_classes)
    return backbone, heads, shape


def batch(shape, task_ids, num_classes, n=18, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    tid = torch.tensor([task_ids[i % len(task_ids)] for i in range(n)])
    y = torch.stack([torch.randint(0, num_classes[int(t)], (), generator=g) for t in tid])
    return x, y, tid


def forward(engine, backbone, heads, x, y, tid):
    with engine.recording(tid):
        features = backbone(x)
    return MTLAlgorithm.task_losses(heads(features, tid), y)


def reference(backbone, heads, x, y, tid):
    """Per-task loop: J of the shared parameters and each task's own head gradient."""
    losses = MTLAlgorithm.task_losses(heads(backbone(x), tid), y)
    params = [p for p in backbone.parameters() if p.requires_grad]
    J = per_task_jacobian_loop(list(losses.values()), params, retain_graph=True)
    head_grads = {t: torch.autograd.grad(loss, list(heads.head(t).parameters()), retain_graph=True)
                  for t, loss in losses.items()}
    return list(losses), J, head_grads


def shared_grad(backbone):
    return torch.cat([p.grad.reshape(-1) for p in backbone.parameters()])


CASES = [
    # backbone, tasks in the batch, expected path for (gramian, jacobian)
    ("mlp", [1, 2, 3], ("gramian", "jacobian")),
    ("mlp", [3, 1], ("gramian", "jacobian")),          # task 2 missing from the batch
    ("cnn", [1, 2, 3], ("gramian", "jacobian")),
    ("tokens", [2, 3, 1], ("gramian", "jacobian")),
    ("mlp_bn", [1, 2, 3], ("batched", "batched")),     # BatchNorm in training mode couples samples
    ("inplace", [1, 2, 3], ("batched", "batched")),
]


@pytest.mark.parametrize("kind,present,paths", CASES)
@pytest.mark.parametrize("need", ["gramian", "jacobian"])
def test_every_path_matches_the_per_task_loop(kind, present, paths, need):
    backbone, heads, shape = make(kind)
    x, y, tid = batch(shape, present, heads.num_classes)
    task_ids, J, head_ref = reference(backbone, heads, x, y, tid)
    assert sorted(task_ids) == sorted(present)

    engine = TaskGradientEngine(backbone, heads)
    grads = engine.compute(forward(engine, backbone, heads, x, y, tid), need)
    assert grads.path == paths[need == "jacobian"], grads.reason
    if grads.path in ("batched", "loop"):
        assert grads.reason  # says why the fast path was not taken
    assert grads.task_ids == task_ids
    torch.testing.assert_close(grads.gramian, J @ J.T, atol=ATOL, rtol=1e-4)
    if need == "jacobian":
        torch.testing.assert_close(grads.jacobian, J, atol=ATOL, rtol=1e-4)
    else:
        assert grads.jacobian is None or grads.path in ("batched", "loop")

    weights = torch.linspace(-1.0, 2.0, len(task_ids))
    head_weights = torch.linspace(0.5, 1.5, len(task_ids))
    grads.apply_weights(weights, head_weights)
    torch.testing.assert_close(shared_grad(backbone), weights @ J, atol=ATOL, rtol=1e-4)
    for k, t in enumerate(task_ids):
        for p, g in zip(heads.head(t).parameters(), head_ref[t]):
            torch.testing.assert_close(p.grad, head_weights[k] * g, atol=ATOL, rtol=1e-4)
    for t in set(heads.task_ids) - set(present):  # an absent task's head is untouched
        assert all(p.grad is None for p in heads.head(t).parameters())


@pytest.mark.parametrize("forced", ["batched", "loop"])
def test_forced_general_paths_match_the_loop(forced):
    backbone, heads, shape = make("mlp_bn")
    x, y, tid = batch(shape, [1, 3, 2], heads.num_classes)
    _, J, _ = reference(backbone, heads, x, y, tid)
    engine = TaskGradientEngine(backbone, heads, path=forced)
    for _ in range(2):  # the second call runs without a retained graph
        grads = engine.compute(forward(engine, backbone, heads, x, y, tid), "jacobian")
        assert grads.path == forced
        torch.testing.assert_close(grads.jacobian, J, atol=ATOL, rtol=1e-4)


def test_batched_failure_falls_back_to_the_loop(monkeypatch):
    backbone, heads, shape = make("mlp_bn")
    x, y, tid = batch(shape, [1, 2, 3], heads.num_classes)
    _, J, _ = reference(backbone, heads, x, y, tid)
    real_grad = torch.autograd.grad

    def no_batching(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            raise RuntimeError("vmap: no batching rule")
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_batching)
    engine = TaskGradientEngine(backbone, heads)
    grads = engine.compute(forward(engine, backbone, heads, x, y, tid), "jacobian")
    assert grads.path == "loop"
    torch.testing.assert_close(grads.jacobian, J, atol=ATOL, rtol=1e-4)


def test_apply_direction_writes_the_direction():
    backbone, heads, shape = make("cnn")
    x, y, tid = batch(shape, [1, 2, 3], heads.num_classes)
    engine = TaskGradientEngine(backbone, heads)
    grads = engine.compute(forward(engine, backbone, heads, x, y, tid), "jacobian")
    direction = grads.jacobian[0] - 2 * grads.jacobian[2]
    grads.apply_direction(direction.clone())
    torch.testing.assert_close(shared_grad(backbone), direction)


@pytest.mark.parametrize("kind", ["mlp", "mlp_bn"])
def test_gramian_restricted_to_some_parameters(kind):
    backbone, heads, shape = make(kind)
    x, y, tid = batch(shape, [1, 2, 3], heads.num_classes)
    last = list(backbone.layers[-2 if kind == "mlp" else -3].parameters())
    assert isinstance(backbone.layers[-2 if kind == "mlp" else -3], nn.Linear)
    losses = MTLAlgorithm.task_losses(heads(backbone(x), tid), y)
    J_last = per_task_jacobian_loop(list(losses.values()), last)
    engine = TaskGradientEngine(backbone, heads)
    grads = engine.compute(forward(engine, backbone, heads, x, y, tid), "gramian", gramian_params=last)
    torch.testing.assert_close(grads.gramian, J_last @ J_last.T, atol=ATOL, rtol=1e-4)


def test_graph_is_freed_after_the_step():
    backbone, heads, shape = make("mlp")
    x, y, tid = batch(shape, [1, 2, 3], heads.num_classes)
    engine = TaskGradientEngine(backbone, heads)
    losses = forward(engine, backbone, heads, x, y, tid)
    engine.compute(losses, "gramian").apply_weights(torch.ones(3))
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        losses[1].backward()


def test_no_recording_under_no_grad_and_unrecorded_forward_takes_the_general_path():
    backbone, heads, shape = make("mlp")
    x, y, tid = batch(shape, [1, 2, 3], heads.num_classes)
    engine = TaskGradientEngine(backbone, heads)
    with torch.no_grad(), engine.recording(tid) as rec:
        backbone(x)
    assert rec is None and engine.take_recording() is None
    losses = MTLAlgorithm.task_losses(heads(backbone(x), tid), y)  # not recorded
    grads = engine.compute(losses, "gramian")
    assert grads.path == "batched" and "no recorded forward" in grads.reason


def test_fast_path_forced_on_a_coupling_backbone_says_why():
    backbone, heads, shape = make("mlp_bn")
    x, y, tid = batch(shape, [1, 2, 3], heads.num_classes)
    engine = TaskGradientEngine(backbone, heads, path="fast")
    with pytest.raises(MtlcliError, match="BatchNorm1d uses batch statistics"):
        engine.compute(forward(engine, backbone, heads, x, y, tid))


def test_batchnorm_in_eval_mode_is_row_wise_but_its_parameters_have_no_rule():
    backbone, heads, shape = make("mlp_bn")
    backbone.eval()
    x, y, tid = batch(shape, [1, 2, 3], heads.num_classes)
    _, J, _ = reference(backbone, heads, x, y, tid)
    engine = TaskGradientEngine(backbone, heads)
    grads = engine.compute(forward(engine, backbone, heads, x, y, tid))
    assert grads.path == "batched" and "has no per-sample rule" in grads.reason
    torch.testing.assert_close(grads.gramian, J @ J.T, atol=ATOL, rtol=1e-4)


def test_nonfinite_task_is_named_on_the_fast_path():
    backbone, heads, shape = make("mlp")
    x, y, tid = batch(shape, [1, 2, 3], heads.num_classes)
    engine = TaskGradientEngine(backbone, heads)
    poison = (tid == 2).unsqueeze(1)

    def inject(module, args, output):  # NaN output-gradients in task 2's rows only
        output.register_hook(lambda g: torch.where(poison, torch.full_like(g, float("nan")), g))

    handle = backbone.layers[1].register_forward_hook(inject)
    losses = forward(engine, backbone, heads, x, y, tid)
    handle.remove()
    grads = engine.compute(losses, "gramian")
    assert grads.path == "gramian"
    assert grads.nonfinite_task() == 2


# -- properties over random shapes and task assignments ------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(widths=st.lists(st.integers(1, 9), min_size=1, max_size=3), num_tasks=st.integers(1, 4),
       batch_size=st.integers(1, 14), bias=st.booleans(), data=st.data())
def test_fast_paths_equal_the_loop_on_random_networks_and_batches(widths, num_tasks, batch_size, bias, data):
    torch.manual_seed(data.draw(st.integers(0, 2**16)))
    dims = [4, *widths]
    layers = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b, bias=bias), nn.Tanh()]
    backbone = nn.Sequential(*layers)
    classes = {t: data.draw(st.integers(1, 4)) for t in range(1, num_tasks + 1)}
    heads = MTLHeads(dims[-1], classes)
    tid = torch.tensor(data.draw(st.lists(st.integers(1, num_tasks), min_size=batch_size, max_size=batch_size)))
    x = torch.randn(batch_size, 4)
    y = torch.stack([torch.randint(0, classes[int(t)], ()) for t in tid])
    _, J, _ = reference(backbone, heads, x, y, tid)
    engine = TaskGradientEngine(backbone, heads)
    for need in ("gramian", "jacobian"):
        grads = engine.compute(forward(engine, backbone, heads, x, y, tid), need)
        assert grads.path == need
        assert (grads.jacobian is None) == (need == "gramian")  # the Gramian path forms no T x P matrix
        torch.testing.assert_close(grads.gramian, J @ J.T, atol=1e-5, rtol=1e-4)
        weights = torch.randn(len(grads.task_ids))
        backbone.zero_grad(set_to_none=True)
        grads.apply_weights(weights)
        torch.testing.assert_close(shared_grad(backbone), weights @ J, atol=1e-5, rtol=1e-4)
    assert engine._scratch is not None  # formed once, for the Jacobian request only


def test_nonfinite_task_is_named_on_the_general_path():
    backbone, heads, shape = make("mlp_bn")
    x, y, tid = batch(shape, [1, 2, 3], heads.num_classes)
    engine = TaskGradientEngine(backbone, heads)
    losses = forward(engine, backbone, heads, x, y, tid)
    # poison task 3's loss with a term whose value is 0 and whose gradient is NaN
    term = backbone(x)[tid == 3].sum() * 0.0
    term.register_hook(lambda g: torch.where(g != 0, g * float("nan"), g))
    losses = {**losses, 3: losses[3] + term}
    grads = engine.compute(losses, "gramian")
    assert grads.path == "batched"
    assert grads.nonfinite_task() == 3
