"""Gradient methods on real backbones: each update equals its rule applied to the
per-task gradients of the plain per-task loop; state survives a checkpoint."""

from __future__ import annotations

import copy
import io
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import mtlcli.algorithms as algorithms
from mtlcli.algorithms import aggregators
from mtlcli.algorithms.base import MTLAlgorithm, NonFiniteLossError
from mtlcli.algorithms.db_mtl import DBMTL, db_mtl_step
from mtlcli.algorithms.excess_mtl import ExcessMTL, excess_risks
from mtlcli.algorithms.gradient_method import GradientMethod, NonFiniteGradientError, Update
from mtlcli.algorithms.gradnorm import GradNorm
from mtlcli.algorithms.jacobian import per_task_jacobian_loop
from mtlcli.algorithms.joint_learning import JointLearning
from mtlcli.algorithms.mgda import MGDA
from mtlcli.backbones.mlp import MLP
from mtlcli.heads import MTLHeads

GOLDEN = json.loads((Path(__file__).parent / "golden" / "aggregators.json").read_text())["cases"]
ATOL = 2e-5
NUM_CLASSES = {1: 2, 2: 3, 3: 5, 4: 2}


class MeanMethod(GradientMethod):
    """Test double: the mean rule through the whole GradientMethod machinery."""

    def __init__(self, backbone: nn.Module, heads: MTLHeads, gradient_path: str = "auto"):
        super().__init__(backbone, heads, aggregators.Mean(), gradient_path)


class CountingMethod(GradientMethod):
    """Test double with aggregator state, to check the checkpoint format."""

    class _Counting(aggregators.Mean):
        def __init__(self):
            self.seen: dict[int, int] = {}

        def weights(self, gramian, task_ids=None):
            for t in task_ids:
                self.seen[t] = self.seen.get(t, 0) + 1
            return super().weights(gramian, task_ids)

        def state_dict(self):
            return {"seen": dict(self.seen)}

        def load_state_dict(self, state):
            self.seen = dict(state["seen"])

    def __init__(self, backbone: nn.Module, heads: MTLHeads):
        super().__init__(backbone, heads, CountingMethod._Counting())


def build(cls, bn: bool = False, init_seed: int = 0, **hyper):
    torch.manual_seed(init_seed)
    return cls(MLP(15, [12, 10], 6, batch_normalization=bn), MTLHeads(6, NUM_CLASSES), **hyper)


def batch(present=(1, 2, 3), n=24, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 15, generator=g)
    tid = torch.tensor([present[i % len(present)] for i in range(n)])
    y = torch.stack([torch.randint(0, NUM_CLASSES[int(t)], (), generator=g) for t in tid])
    return x, y, tid


def reference(alg: MTLAlgorithm, x, y, tid, params=None):
    """Loop reference on a copy: task ids, losses, J (shared), per-task head gradients."""
    alg = copy.deepcopy(alg)
    losses = MTLAlgorithm.task_losses(alg.heads(alg.backbone(x), tid), y)
    params = list(alg.backbone.parameters()) if params is None else [dict(alg.named_parameters())[n] for n in params]
    J = per_task_jacobian_loop(list(losses.values()), params, retain_graph=True)
    heads = {t: [g for g in torch.autograd.grad(loss, list(alg.heads.head(t).parameters()), retain_graph=True)]
             for t, loss in losses.items()}
    return list(losses), torch.stack([v.detach() for v in losses.values()]), J, heads


def shared_grad(alg):
    return torch.cat([p.grad.reshape(-1) for p in alg.backbone.parameters()])


def head_grad(alg, t):
    return [p.grad for p in alg.heads.head(t).parameters()]


def round_trip(alg: nn.Module) -> dict:
    buffer = io.BytesIO()
    torch.save(alg.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# -- the base class ------------------------------------------------------------------

@pytest.mark.parametrize("bn,path,expected_path", [
    (False, "auto", "gramian"), (True, "auto", "batched"), (False, "loop", "loop"), (True, "batched", "batched"),
])
def test_mean_rule_reproduces_joint_learning(bn, path, expected_path):
    alg = build(MeanMethod, bn=bn, gradient_path=path)
    joint = JointLearning(copy.deepcopy(alg.backbone), copy.deepcopy(alg.heads))
    x, y, tid = batch(present=(1, 3, 4))
    out = alg.training_step(x, y, tid)
    ref = joint.training_step(x, y, tid)
    assert alg.last_gradient_path == expected_path
    torch.testing.assert_close(shared_grad(alg), shared_grad(joint), atol=ATOL, rtol=1e-4)
    for t in (1, 3, 4):  # heads get ∇L_t; JointLearning's mean gives them ∇L_t / T
        for g, g_joint in zip(head_grad(alg, t), head_grad(joint, t)):
            torch.testing.assert_close(g, 3 * g_joint, atol=ATOL, rtol=1e-4)
    assert all(p.grad is None for p in alg.heads.head(2).parameters())  # absent task
    torch.testing.assert_close(out.loss, ref.loss)  # weights 1/T: the mean loss


def test_jacobian_aggregators_get_coordinates():
    class MeanOnCoordinates(aggregators.Mean):
        gramian_only = False

    alg = build(MeanMethod)
    object.__setattr__(alg, "aggregator", MeanOnCoordinates())
    x, y, tid = batch()
    _, _, J, _ = reference(alg, x, y, tid)
    alg.training_step(x, y, tid)
    assert alg.last_gradient_path == "jacobian"
    torch.testing.assert_close(shared_grad(alg), J.mean(0), atol=ATOL, rtol=1e-4)


def test_nonfinite_gradient_raises_before_any_grad_is_written():
    alg = build(MeanMethod)
    x, y, tid = batch()
    poison = (tid == 3).unsqueeze(1)

    def inject(module, args, output):
        output.register_hook(lambda g: torch.where(poison, torch.full_like(g, float("inf")), g))

    alg.backbone.layers[3].register_forward_hook(inject)
    with pytest.raises(NonFiniteGradientError, match="task 3 has a non-finite gradient") as err:
        alg.training_step(x, y, tid)
    assert isinstance(err.value, NonFiniteLossError) and err.value.task_id == 3
    assert all(p.grad is None for p in alg.parameters())


def test_nonfinite_update_from_finite_gradients_raises():
    class Broken(aggregators.Mean):
        def weights(self, gramian, task_ids=None):
            return torch.full((gramian.shape[0],), float("nan"))

    alg = build(MeanMethod)
    object.__setattr__(alg, "aggregator", Broken())
    with pytest.raises(NonFiniteGradientError, match="aggregated update is not finite"):
        alg.training_step(*batch())
    assert all(p.grad is None for p in alg.parameters())


def test_aggregator_state_round_trips_through_a_weights_only_checkpoint():
    alg = build(CountingMethod)
    alg.training_step(*batch(present=(1, 2)))
    alg.training_step(*batch(present=(2, 4), seed=2))
    restored = build(CountingMethod, init_seed=5)
    restored.load_state_dict(round_trip(alg))
    assert restored.aggregator.seen == {1: 1, 2: 2, 4: 1}


def test_update_must_choose_weights_or_direction():
    with pytest.raises(TypeError):
        GradientMethod._check_update(Update())


# -- MGDA ----------------------------------------------------------------------------

@pytest.mark.parametrize("normalization", ["none", "l2", "loss", "loss+"])
def test_mgda_weights_are_the_rule_on_the_loop_gramian(normalization):
    alg = build(MGDA, normalization=normalization)
    x, y, tid = batch()
    ids, losses, J, heads = reference(alg, x, y, tid)
    expected_w = aggregators.MGDA(normalization).weights((J @ J.T).double(), ids, losses=losses.double())
    out = alg.training_step(x, y, tid)
    torch.testing.assert_close(shared_grad(alg), expected_w.float() @ J, atol=ATOL, rtol=1e-3)
    torch.testing.assert_close(out.loss, (expected_w.float() * losses).sum(), atol=1e-5, rtol=1e-4)
    for t in ids:  # heads: their own task's gradient, unweighted
        for g, g_ref in zip(head_grad(alg, t), heads[t]):
            torch.testing.assert_close(g, g_ref, atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("bn", [False, True])
@pytest.mark.parametrize("normalization", ["none", "l2"])
def test_mgda_ub_is_inverse_squared_norm_weighting_of_representation_gradients(bn, normalization):
    alg = build(MGDA, bn=bn, normalization=normalization, mgda_ub=True)
    x, y, tid = batch(present=(4, 1, 2))
    ref = copy.deepcopy(alg)
    z = ref.backbone(x)
    losses = MTLAlgorithm.task_losses(ref.heads(z, tid), y)
    ids = list(losses)
    rep = per_task_jacobian_loop(list(losses.values()), [z], retain_graph=True)
    norms = rep.norm(dim=1)
    # disjoint rows: the representation Gramian is diagonal
    torch.testing.assert_close(rep @ rep.T, torch.diag(norms ** 2), atol=1e-7, rtol=0)
    if normalization == "none":
        w = norms ** -2 / (norms ** -2).sum()
    else:
        w = 1.0 / (len(ids) * norms)
    J = per_task_jacobian_loop(list(losses.values()), list(ref.backbone.parameters()))
    alg.training_step(x, y, tid)
    assert alg.last_gradient_path == "representation"
    torch.testing.assert_close(shared_grad(alg), w @ J, atol=ATOL, rtol=1e-4)


# -- DB-MTL --------------------------------------------------------------------------

@pytest.mark.parametrize("case", [c for c in GOLDEN if c["method"] == "db_mtl"], ids=lambda c: c["id"])
def test_db_mtl_rule_matches_golden(case):
    p = case["params"]
    sequence = [torch.tensor(G) for G in p["G_sequence"]] + [torch.tensor(case["G"])]
    momentum = torch.zeros_like(sequence[0])
    for step, G in enumerate(sequence, start=1):
        direction, momentum = db_mtl_step(G, momentum, torch.full((G.shape[0],), step), p["beta"], p["beta_sigma"])
    expected = torch.tensor(case["expected"], dtype=torch.float64)
    assert (direction.double() - expected).abs().max().item() <= case["atol"]


def test_db_mtl_class_applies_its_rule_to_log_loss_gradients_with_per_task_state():
    alg = build(DBMTL, beta=0.9, beta_sigma=0.5)
    momentum = torch.zeros(4, alg.num_shared_parameters())
    steps = torch.zeros(4, dtype=torch.long)
    for seed, present in [(1, (1, 2, 3)), (2, (2, 4)), (3, (1, 2, 3, 4))]:
        x, y, tid = batch(present=present, seed=seed)
        ids, losses, J, heads = reference(alg, x, y, tid)
        slots = torch.tensor([t - 1 for t in ids])
        steps[slots] += 1
        direction, m = db_mtl_step(J / (losses.unsqueeze(1) + 1e-8), momentum[slots], steps[slots], 0.9, 0.5)
        momentum[slots] = m
        alg.zero_grad(set_to_none=True)
        alg.training_step(x, y, tid)
        torch.testing.assert_close(shared_grad(alg), direction, atol=1e-4, rtol=1e-4)
        for k, t in enumerate(ids):
            for g, g_ref in zip(head_grad(alg, t), heads[t]):
                torch.testing.assert_close(g, g_ref / (losses[k] + 1e-8), atol=ATOL, rtol=1e-4)
        with torch.no_grad():  # move the weights so the next step sees new gradients
            for p in alg.parameters():
                p -= 0.1 * p.grad if p.grad is not None else 0
    torch.testing.assert_close(alg.momentum, momentum, atol=1e-4, rtol=1e-4)
    assert alg.steps.tolist() == [2, 3, 2, 2]
    restored = build(DBMTL, init_seed=3)
    restored.load_state_dict(round_trip(alg))
    torch.testing.assert_close(restored.momentum, alg.momentum)
    assert restored.steps.tolist() == [2, 3, 2, 2]


# -- GradNorm ------------------------------------------------------------------------

def test_gradnorm_weights_and_their_gradient_follow_the_paper():
    alg = build(GradNorm, alpha=1.5)
    last = ["backbone.layers.5.weight", "backbone.layers.5.bias"]
    assert [p.shape for p in alg.last_shared_layer_parameters()] == [torch.Size([6, 10]), torch.Size([6])]
    # with BatchNorm after it, the last Linear is still the last layer of weights
    assert build(GradNorm, bn=True).last_shared_layer_parameters()[0].shape == torch.Size([6, 10])
    x, y, tid = batch()
    ids, L0, J, _ = reference(alg, x, y, tid)
    alg.training_step(x, y, tid)  # first step: L(0) recorded, weights 1
    torch.testing.assert_close(shared_grad(alg), J.sum(0), atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(alg.initial_losses[:3], L0)

    with torch.no_grad():  # an optimizer step on w, then the next batch
        alg.task_weights.copy_(torch.tensor([0.5, 1.5, 1.0, 3.0]))
    alg.zero_grad(set_to_none=True)
    x, y, tid = batch(seed=2)
    ids, L, J, heads = reference(alg, x, y, tid)
    _, _, J_last, _ = reference(alg, x, y, tid, params=last)
    alg.training_step(x, y, tid)
    w_all = torch.tensor([0.5, 1.5, 1.0, 3.0]) * (4 / 6.0)  # renormalised to sum T = 4
    torch.testing.assert_close(alg.task_weights.detach(), w_all)
    w = w_all[:3]
    norms = J_last.norm(dim=1)
    rate = (L / L0) / (L / L0).mean()
    target = (w * norms).mean() * rate ** 1.5
    expected_w_grad = torch.sign(w * norms - target) * norms
    torch.testing.assert_close(alg.task_weights.grad[:3], expected_w_grad, atol=ATOL, rtol=1e-4)
    assert alg.task_weights.grad[3] == 0  # absent task
    torch.testing.assert_close(shared_grad(alg), w @ J, atol=ATOL, rtol=1e-4)
    for k, t in enumerate(ids):
        for g, g_ref in zip(head_grad(alg, t), heads[t]):
            torch.testing.assert_close(g, w[k] * g_ref, atol=ATOL, rtol=1e-4)


# -- ExcessMTL -----------------------------------------------------------------------

def test_excess_mtl_multiplicative_weights_from_excess_risks():
    alg = build(ExcessMTL, robust_step_size=0.5)
    acc = torch.zeros(4, alg.num_shared_parameters())
    initial = torch.full((4,), float("nan"))
    w_all = torch.ones(4)
    for seed, present in [(1, (1, 2, 3)), (2, (1, 2, 3, 4)), (3, (2, 3, 4))]:
        x, y, tid = batch(present=present, seed=seed)
        ids, _, J, _ = reference(alg, x, y, tid)
        slots = torch.tensor([t - 1 for t in ids])
        acc[slots] += J * J
        risk = excess_risks(J, acc[slots])
        for k, s in enumerate(slots.tolist()):
            if math.isnan(initial[s]):
                initial[s] = risk[k]
            else:
                w_all[s] *= math.exp(0.5 * risk[k] / initial[s])
        w_all *= 4 / w_all.sum()
        alg.zero_grad(set_to_none=True)
        alg.training_step(x, y, tid)
        torch.testing.assert_close(alg.loss_weights, w_all, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(shared_grad(alg), w_all[slots] @ J, atol=ATOL, rtol=1e-4)
    # the hand-computed risk is the AdaGrad-preconditioned squared norm
    G = torch.tensor([[3.0, 4.0]])
    torch.testing.assert_close(excess_risks(G, G * G), torch.tensor([3.0 + 4.0]), atol=1e-5, rtol=0)
    restored = build(ExcessMTL, init_seed=4)
    restored.load_state_dict(round_trip(alg))
    torch.testing.assert_close(restored.grad_sq_sum, alg.grad_sq_sum)
    torch.testing.assert_close(restored.loss_weights, alg.loss_weights)


# -- the whole catalogue -------------------------------------------------------------

GRADIENT_METHODS = [getattr(algorithms, name) for name in algorithms.BUILTIN_ALGORITHMS
                    if issubclass(getattr(algorithms, name), GradientMethod)]


@pytest.mark.parametrize("cls", GRADIENT_METHODS, ids=lambda c: c.__name__)
def test_every_gradient_method_steps_with_a_missing_task_and_checkpoints(cls):
    alg = build(cls)
    x, y, tid = batch(present=(1, 2, 4))
    out = alg.training_step(x, y, tid)
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in alg.backbone.parameters())
    assert all(p.grad is None for p in alg.heads.head(3).parameters())
    assert alg.last_gradient_path in ("gramian", "jacobian", "representation")
    restored = build(cls, init_seed=9)
    restored.load_state_dict(round_trip(alg))
    for (name, a), (_, b) in zip(alg.state_dict().items(), restored.state_dict().items()):
        if isinstance(a, torch.Tensor):
            torch.testing.assert_close(a, b, equal_nan=True, msg=name)


@pytest.mark.parametrize("cls", GRADIENT_METHODS, ids=lambda c: c.__name__)
def test_docstring_and_repr_show_every_hyperparameter(cls):
    import inspect

    names = [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", "backbone", "heads")]
    doc = cls.__doc__
    assert "Paper:" in doc and "Output scale" in doc and "Update rule" in doc
    text = repr(build(cls))
    for name in names:
        assert f"{name}:" in doc, name
        assert f"{name}=" in text, name


# -- aggregator-backed methods: the update is the aggregator's rule on the loop's J ------

from mtlcli.algorithms import (AlignedMTL, CAGrad, ConFIG, DualProj, FairGrad, GradDrop, GradVac,  # noqa: E402
                               IMTL, MoCo, NashMTL, PCGrad, UPGrad)

RULES = [
    (PCGrad, dict(reduction="mean", eps=1e-8), lambda: aggregators.PCGrad("mean", 1e-8)),
    (GradVac, dict(beta=0.3), lambda: aggregators.GradVac(0.3)),
    (CAGrad, dict(c=0.5, rescale=0), lambda: aggregators.CAGrad(0.5, 0)),
    (AlignedMTL, dict(reduction="mean"), lambda: aggregators.AlignedMTL("mean")),
    (UPGrad, dict(), lambda: aggregators.UPGrad()),
    (DualProj, dict(), lambda: aggregators.DualProj()),
    (FairGrad, dict(alpha=2.0), lambda: aggregators.FairGrad(2.0)),
    (ConFIG, dict(), lambda: aggregators.ConFIG()),
    (NashMTL, dict(max_norm=0.0), lambda: aggregators.NashMTL(0.0)),
    (GradDrop, dict(leak=0.2, seed=3), lambda: aggregators.GradDrop(0.2, 3)),
    (MoCo, dict(gamma=0.2), lambda: aggregators.MoCo(gamma=0.2)),
    (IMTL, dict(variant="imtl_g"), lambda: aggregators.IMTLG()),
]


def rule_direction(aggregator, J, ids):
    if aggregator.gramian_only:
        return aggregator.weights((J @ J.T).double(), ids).float() @ J
    return aggregator(J, ids)


@pytest.mark.parametrize("bn", [False, True])
@pytest.mark.parametrize("cls,hyper,rule", RULES, ids=lambda v: getattr(v, "__name__", ""))
def test_update_is_the_aggregator_rule_on_the_per_task_gradients(cls, hyper, rule, bn):
    alg = build(cls, bn=bn, **hyper)
    aggregator = rule()
    for seed, present in [(1, (1, 2, 3)), (2, (2, 3, 4))]:  # two steps: stateful rules evolve alike
        x, y, tid = batch(present=present, seed=seed)
        ids, _, J, heads = reference(alg, x, y, tid)
        expected = rule_direction(aggregator, J, ids)
        alg.zero_grad(set_to_none=True)
        alg.training_step(x, y, tid)
        assert alg.last_gradient_path == ("batched" if bn else "jacobian" if alg.needs_jacobian else "gramian")
        torch.testing.assert_close(shared_grad(alg), expected, atol=1e-4, rtol=1e-3)
        for t in ids:
            for g, g_ref in zip(head_grad(alg, t), heads[t]):
                torch.testing.assert_close(g, g_ref, atol=ATOL, rtol=1e-4)
    if aggregator.state_dict():  # the method's checkpoint carries the rule's state
        restored = build(cls, bn=bn, init_seed=7, **hyper)
        restored.load_state_dict(round_trip(alg))
        assert_same(restored.aggregator.state_dict(), aggregator.state_dict())


def assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, equal_nan=True)
    else:
        assert a == b


@pytest.mark.parametrize("variant", ["imtl_l", "both"])
def test_imtl_loss_scales(variant):
    alg = build(IMTL, variant=variant)
    with torch.no_grad():
        alg.loss_scale.copy_(torch.tensor([0.3, -0.2, 0.1, 0.5]))
    x, y, tid = batch(present=(1, 2, 4))
    ids, L, J, heads = reference(alg, x, y, tid)
    s = torch.tensor([0.3, -0.2, 0.5]).exp()
    if variant == "imtl_l":
        w = s
    else:  # IMTL-G on the scaled gradients, mapped back to the raw ones
        Js = J * s[:, None]
        w = aggregators.IMTLG().weights((Js @ Js.T).double(), ids).float() * s
    alg.training_step(x, y, tid)
    torch.testing.assert_close(shared_grad(alg), w @ J, atol=1e-4, rtol=1e-3)
    # d/ds (e^s L - s) = e^s L - 1; task 3 is absent
    torch.testing.assert_close(alg.loss_scale.grad, torch.tensor([s[0] * L[0] - 1, s[1] * L[1] - 1, 0.0,
                                                                  s[2] * L[2] - 1]), atol=1e-6, rtol=1e-5)
    for k, t in enumerate(ids):
        for g, g_ref in zip(head_grad(alg, t), heads[t]):
            torch.testing.assert_close(g, s[k] * g_ref, atol=ATOL, rtol=1e-4)


def test_imtl_g_equal_projections_on_the_unit_gradients():
    alg = build(IMTL, variant="imtl_g")
    x, y, tid = batch()
    _, _, J, _ = reference(alg, x, y, tid)
    alg.training_step(x, y, tid)
    projections = (J / J.norm(dim=1, keepdim=True)) @ shared_grad(alg)
    torch.testing.assert_close(projections, projections.mean().expand(3), atol=1e-5, rtol=1e-4)


def test_nash_mtl_clips_and_reuses_weights_between_solves():
    alg = build(NashMTL, max_norm=0.5, update_weights_every=2)
    solver = aggregators.NashMTL(0.0)
    x, y, tid = batch()
    ids, _, J, _ = reference(alg, x, y, tid)
    alpha = solver.weights((J @ J.T).double(), ids).float()
    alg.training_step(x, y, tid)
    d = shared_grad(alg)
    torch.testing.assert_close(d.norm(), torch.tensor(0.5), atol=1e-5, rtol=1e-5)  # ||Gᵀα|| = sqrt(3) > 0.5
    torch.testing.assert_close(d, (alpha @ J) * (0.5 / (alpha @ J).norm()), atol=1e-5, rtol=1e-4)
    # second step: the same weights on new gradients, clipped again
    alg.zero_grad(set_to_none=True)
    x, y, tid = batch(seed=2)
    _, _, J2, _ = reference(alg, x, y, tid)
    alg.training_step(x, y, tid)
    expected = alpha @ J2
    expected = expected * min(1.0, 0.5 / expected.norm().item())
    torch.testing.assert_close(shared_grad(alg), expected, atol=1e-5, rtol=1e-4)
    restored = build(NashMTL, max_norm=0.5, update_weights_every=2)
    restored.load_state_dict(round_trip(alg))
    assert restored.method_state()["step"] == 2
    torch.testing.assert_close(restored.method_state()["weights"], alpha.double(), atol=1e-6, rtol=1e-6)
    # a task never solved for forces a solve even between scheduled ones
    alg.training_step(*batch(present=(1, 4), seed=3))
    assert 4 in alg._solved


def test_nash_mtl_undefined_input_raises_instead_of_equal_weights():
    alg = build(NashMTL)
    x, y, tid = batch(present=(1, 2))
    with torch.no_grad():  # task 2's head outputs constant logits: zero gradient for the backbone
        alg.heads.head(2).weight.zero_()
    with pytest.raises(aggregators.UndefinedAggregationError):
        alg.training_step(x, y, tid)


# -- training: every gradient method learns the default digits experiment ------------------

@pytest.fixture(scope="module")
def digits_experiment():
    from mtlcli.compose import compose
    from mtlcli.resources import config_search_path

    return compose("example_mtl_train", ["trainer.max_epochs=1"], config_search_path())


TRAINING_CASES = [(cls, {}) for cls in GRADIENT_METHODS] + [(MGDA, {"mgda_ub": True}), (IMTL, {"variant": "imtl_l"})]


@pytest.mark.parametrize("cls,hyper", TRAINING_CASES, ids=lambda v: getattr(v, "__name__", None) or str(v))
def test_trains_the_default_digits_experiment_for_an_epoch(cls, hyper, digits_experiment, tmp_path):
    from mtlcli.engine.progress import Progress
    from mtlcli.experiment import build_run, run_data

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = copy.deepcopy(digits_experiment.config)
        config["mtl_algorithm"] = {"_target_": f"mtlcli.algorithms.{cls.__name__}", **hyper}
        built = build_run(config, digits_experiment)
        assert isinstance(built.model, cls)
        results = built.trainer.fit(built.model, built.optimizer, built.scheduler, run_data(built), tmp_path,
                                    Progress("quiet"))
    finally:
        torch.set_num_threads(threads)
    # the default backbone has BatchNorm in training mode: the exact general path
    assert built.model.last_gradient_path in ("batched", "representation")
    assert [r.task_id for r in results] == [1, 2, 3, 4, 5]
    for r in results:  # digit pairs: chance is 0.5
        assert math.isfinite(r.loss) and r.accuracy > 0.8, (cls.__name__, r)


@pytest.mark.parametrize("cls,hyper", [(UPGrad, {}), (DBMTL, {}), (MGDA, {"mgda_ub": True})],
                         ids=["UPGrad", "DBMTL", "MGDA-UB"])
def test_half_precision_autocast_writes_float32_grads_close_to_the_float32_step(cls, hyper):
    x, y, tid = batch()
    exact = build(cls, **hyper)
    exact.training_step(x, y, tid)
    alg = build(cls, **hyper)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        alg.training_step(x, y, tid)
    assert {p.grad.dtype for p in alg.parameters() if p.grad is not None} == {torch.float32}
    cosine = torch.nn.functional.cosine_similarity(shared_grad(alg), shared_grad(exact), dim=0)
    assert cosine > 0.98
