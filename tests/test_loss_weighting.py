"""Loss-weighting methods: golden values (DWA, UW), each rule recomputed by hand,
absent tasks, checkpoint round trips, and the docstring/repr contract."""

from __future__ import annotations

import inspect
import io
import json
import math
from pathlib import Path

import pytest
import torch

import mtlcli.algorithms as algorithms
from mtlcli.algorithms import DWA, EW, FAMO, GLS, RLW, STCH, UW
from mtlcli.algorithms.dwa import dwa_weights
from mtlcli.backbones import MLP
from mtlcli.heads import MTLHeads

GOLDEN = json.loads((Path(__file__).parent / "golden" / "aggregators.json").read_text())["cases"]
ALL = [EW, UW, DWA, RLW, GLS, STCH, FAMO]


def make(cls, num_tasks: int = 3, **hyper):
    torch.manual_seed(0)
    heads = MTLHeads(6, {t: 2 + (t % 2) for t in range(1, num_tasks + 1)})
    return cls(MLP(4, [8], 6), heads, **hyper)


def leaves(values: dict[int, float], dtype=torch.float32) -> dict[int, torch.Tensor]:
    """Task losses as leaf tensors: after ``backward`` their ``.grad`` is d total / d L_t."""
    return {t: torch.tensor(v, dtype=dtype, requires_grad=True) for t, v in values.items()}


def grads(losses: dict[int, torch.Tensor]) -> list[float]:
    return [losses[t].grad.item() for t in losses]


def assert_close(got, expected, atol):
    got, expected = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(expected, dtype=torch.float64)
    assert torch.max(torch.abs(got - expected)).item() <= atol, (got, expected, atol)


def golden_atol(values, tol):
    scale = max(abs(v) for v in values)
    return tol * scale if scale > 0 else tol


# -- golden values ------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [c for c in GOLDEN if c["method"] == "uw"], ids=lambda c: c["id"])
def test_uw_matches_golden(case):
    p = case["params"]
    alg = make(UW, num_tasks=len(p["losses"]))
    with torch.no_grad():
        alg.log_variance.copy_(torch.tensor(p["log_var"]))
    losses = leaves(dict(enumerate(p["losses"], start=1)))
    total = alg.backward(losses)
    assert_close([total.item()], case["expected"], case["atol"])
    assert_close(grads(losses), case["expected_weights"], case["weights_atol"])
    ds = case["extra"]["dTotal_ds"]
    assert_close(alg.log_variance.grad, ds, golden_atol(ds, case["tol"]))


def feed_epoch(alg, mean_losses: list[float]) -> None:
    """One epoch of two steps whose per-task mean is ``mean_losses``."""
    for factor in (0.5, 1.5):
        alg.combine({t: torch.tensor(v * factor) for t, v in enumerate(mean_losses, start=1)})
    alg.on_train_epoch_end(0)


@pytest.mark.parametrize("case", [c for c in GOLDEN if c["method"] == "dwa"], ids=lambda c: c["id"])
def test_dwa_matches_golden(case):
    p = case["params"]
    num_tasks = len(p["current_losses"])
    alg = make(DWA, num_tasks=num_tasks, temperature=p["temperature"])
    history = [[3.0 + e] * num_tasks for e in range(p["epoch"] - 2)] + [p["loss_t_minus_2"], p["loss_t_minus_1"]]
    for epoch_means in history[-p["epoch"]:] if p["epoch"] else []:
        feed_epoch(alg, epoch_means)
    assert int(alg.completed_epochs) == p["epoch"]
    losses = leaves(dict(enumerate(p["current_losses"], start=1)))
    total = alg.backward(losses)
    assert_close([total.item()], case["expected"], case["atol"])
    assert_close(grads(losses), case["expected_weights"], case["weights_atol"])
    assert_close(alg.weights(), case["expected_weights"], case["weights_atol"])


# -- each rule by hand --------------------------------------------------------------------------

def test_ew_default_is_the_sum_and_static_weights_are_used_as_given():
    losses = leaves({1: 0.3, 2: 1.2, 3: 2.0})
    assert make(EW).backward(losses).item() == pytest.approx(3.5)
    assert grads(losses) == [1.0, 1.0, 1.0]
    losses = leaves({1: 0.3, 2: 1.2, 3: 2.0})
    total = make(EW, weights=[0.2, 0.5, 0.3]).backward(losses)
    assert total.item() == pytest.approx(0.2 * 0.3 + 0.5 * 1.2 + 0.3 * 2.0)
    assert grads(losses) == pytest.approx([0.2, 0.5, 0.3])


@pytest.mark.parametrize("weights, message", [([1.0, 2.0], "2 entries but there are 3 tasks"), ([1.0, -1.0, 1.0], "non-negative"), ([1.0, float("nan"), 1.0], "finite")])
def test_ew_rejects_bad_weights(weights, message):
    with pytest.raises(ValueError, match=message):
        make(EW, weights=weights)


def test_uw_gradient_wrt_log_variance_and_learns_toward_the_loss():
    alg = make(UW, init_log_variance=0.0)
    losses = leaves({1: 2.0, 2: 0.5, 3: 1.0})
    alg.backward(losses)
    # d/ds_t [L_t e^{-s_t}/2 + s_t/2] = (1 - L_t e^{-s_t}) / 2 at s = 0.
    assert alg.log_variance.grad.tolist() == pytest.approx([(1 - 2.0) / 2, (1 - 0.5) / 2, 0.0])
    # Minimising over s alone drives exp(s_t) to L_t.
    opt = torch.optim.SGD([alg.log_variance], lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        alg.combine({t: torch.tensor(v) for t, v in {1: 2.0, 2: 0.5, 3: 1.0}.items()}).backward()
        opt.step()
    assert torch.exp(alg.log_variance).tolist() == pytest.approx([2.0, 0.5, 1.0], rel=1e-3)


def test_dwa_weights_by_hand():
    prev, before = [1.0, 2.0, 0.5], [2.0, 2.0, 0.25]
    ratios = [p / b for p, b in zip(prev, before)]
    e = [math.exp(r / 2.0) for r in ratios]
    expected = [3 * v / sum(e) for v in e]
    assert dwa_weights(torch.tensor(prev), torch.tensor(before), 2.0).tolist() == pytest.approx(expected)


def test_dwa_uses_epoch_means_and_is_one_for_two_epochs():
    alg = make(DWA)
    assert alg.weights().tolist() == [1.0, 1.0, 1.0]
    feed_epoch(alg, [2.0, 1.0, 1.0])
    assert alg.weights().tolist() == [1.0, 1.0, 1.0]
    feed_epoch(alg, [1.0, 1.0, 2.0])
    expected = dwa_weights(torch.tensor([1.0, 1.0, 2.0]), torch.tensor([2.0, 1.0, 1.0]), 2.0)
    assert torch.allclose(alg.weights(), expected)
    assert alg.weights()[2] > alg.weights()[1] > alg.weights()[0]  # the task whose loss rose gets most


def test_dwa_task_absent_for_an_epoch_keeps_its_previous_mean():
    alg = make(DWA)
    feed_epoch(alg, [1.0, 1.0, 1.0])
    alg.combine({1: torch.tensor(0.5), 3: torch.tensor(2.0)})  # task 2 never appears
    alg.on_train_epoch_end(1)
    assert alg.epoch_losses[1].tolist() == pytest.approx([0.5, 1.0, 2.0])
    ratios = torch.tensor([0.5, 1.0, 2.0])
    assert torch.allclose(alg.weights(), 3 * torch.softmax(ratios / 2.0, dim=0))


def expected_rlw_weights(seed: int, steps: int, present: list[int], num_tasks: int = 3) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        z = torch.randn(num_tasks, generator=g)
    e = [math.exp(z[t - 1].item()) for t in present]
    return [v / sum(e) for v in e]


def test_rlw_weights_are_softmax_of_seeded_normals_over_present_tasks():
    alg = make(RLW, seed=7)
    for step in range(1, 4):
        losses = leaves({1: 1.0, 3: 2.0})
        alg.backward(losses)
        assert grads(losses) == pytest.approx(expected_rlw_weights(7, step, [1, 3]))
        assert sum(grads(losses)) == pytest.approx(1.0)


def test_rlw_default_seed_follows_the_global_seed():
    torch.manual_seed(123)
    a = make(RLW)  # make() reseeds with 0
    torch.manual_seed(0)
    assert a.seed == torch.initial_seed() == 0


def test_gls_is_the_geometric_mean_and_weights_each_task_by_its_inverse_loss():
    values = {1: 0.4, 2: 2.5, 3: 1.7}
    losses = leaves(values)
    total = make(GLS).backward(losses)
    geometric = math.prod(values.values()) ** (1 / 3)
    assert total.item() == pytest.approx(geometric, rel=1e-6)
    assert grads(losses) == pytest.approx([geometric / (3 * v) for v in values.values()], rel=1e-5)


def test_gls_zero_loss_gives_no_nan():
    losses = leaves({1: 0.0, 2: 1.0})
    total = make(GLS, num_tasks=2).backward(losses)
    assert math.isfinite(total.item()) and total.item() < 1e-10
    assert all(math.isfinite(g) for g in grads(losses))


def test_stch_phases_by_hand():
    alg = make(STCH, mu=0.5, warmup_epochs=1)
    values = {1: 0.4, 2: 2.5, 3: 1.7}
    # Warm-up (epoch 0): the sum of log-losses.
    losses = leaves(values)
    assert alg.backward(losses).item() == pytest.approx(sum(math.log(v) for v in values.values()), rel=1e-6)
    assert grads(losses) == pytest.approx([1 / v for v in values.values()], rel=1e-5)
    alg.on_train_epoch_end(0)
    # Nadir epoch (epoch 1): same loss; the epoch mean becomes the nadir.
    assert alg.phase == "nadir"
    feed_epoch(alg, [2.0, 4.0, 1.0])
    assert alg.nadir.tolist() == pytest.approx([2.0, 4.0, 1.0])
    # STCH (epoch 2): n * mu * log sum exp(log(L/z) / mu).
    assert alg.phase == "stch"
    losses = leaves(values)
    total = alg.backward(losses)
    a = [math.log(v / z) / 0.5 for v, z in zip(values.values(), [2.0, 4.0, 1.0])]
    assert total.item() == pytest.approx(3 * 0.5 * math.log(sum(math.exp(x) for x in a)), rel=1e-6)
    p = [math.exp(x) / sum(math.exp(y) for y in a) for x in a]
    assert grads(losses) == pytest.approx([3 * pi / v for pi, v in zip(p, values.values())], rel=1e-5)


def test_stch_small_mu_approaches_the_tchebycheff_max():
    alg = make(STCH, mu=1e-3, warmup_epochs=0)
    feed_epoch(alg, [1.0, 1.0, 1.0])
    total = alg.combine({1: torch.tensor(0.5), 2: torch.tensor(3.0), 3: torch.tensor(1.0)})
    assert total.item() == pytest.approx(3 * math.log(3.0), abs=1e-2)


def test_famo_network_weights_by_hand():
    alg = make(FAMO)
    with torch.no_grad():
        alg.logits.copy_(torch.tensor([0.3, -0.2, 0.1]))
    values = {1: 0.4, 2: 2.5, 3: 1.7}
    losses = leaves(values)
    alg.backward(losses)
    z = [math.exp(v) for v in [0.3, -0.2, 0.1]]
    z = [v / sum(z) for v in z]
    r = [zi / (v + 1e-8) for zi, v in zip(z, values.values())]
    assert grads(losses) == pytest.approx([ri / sum(r) for ri in r], rel=1e-5)


def test_famo_logit_update_equals_adam_on_the_softmax_vjp():
    alg = make(FAMO, w_lr=0.1, gamma=0.01)
    w = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.1, weight_decay=0.01)
    steps = [({1: 1.0, 2: 2.0, 3: 0.5}, {1: 0.9, 2: 1.9, 3: 0.2}),
             ({1: 0.8, 2: 1.5, 3: 0.4}, {1: 0.7, 2: 1.5, 3: 0.35}),
             ({1: 0.7, 2: 1.4, 3: 0.3}, {1: 0.5, 2: 1.45, 3: 0.31})]
    for before, after in steps:
        alg.update_logits({t: torch.tensor(v) for t, v in before.items()}, {t: torch.tensor(v) for t, v in after.items()})
        delta = torch.tensor([math.log(before[t] + 1e-8) - math.log(after[t] + 1e-8) for t in (1, 2, 3)])
        opt.zero_grad()
        (w.grad,) = torch.autograd.grad(torch.softmax(w, 0), w, grad_outputs=delta)
        opt.step()
        assert torch.allclose(alg.logits, w.detach(), atol=1e-6)
    # Task 3's log-loss fell most overall: it ends with the smallest weight.
    assert int(torch.argmin(alg.logits)) == 2


def test_famo_logit_update_uses_only_tasks_seen_before_and_after():
    alg = make(FAMO, w_lr=0.1, gamma=0.0)
    alg.update_logits({1: torch.tensor(1.0), 2: torch.tensor(1.0), 3: torch.tensor(1.0)},
                      {1: torch.tensor(0.5), 3: torch.tensor(0.9)})
    assert alg.logits[1].item() == 0.0  # task 2 was not re-evaluated: no gradient
    # Over {1, 3} alone: z = (1/2, 1/2), grad = z * (delta - z.delta), Adam's first step moves by lr * sign.
    assert alg.logits[0].item() == pytest.approx(-0.1, rel=1e-4)
    assert alg.logits[2].item() == pytest.approx(0.1, rel=1e-4)


def test_famo_training_step_reevaluates_the_previous_batch_after_the_optimizer_step():
    alg = make(FAMO, w_lr=0.1)
    opt = torch.optim.SGD(alg.parameters(), lr=0.5)
    torch.manual_seed(1)
    batches = [(torch.randn(12, 4), torch.randint(0, 2, (12,)), torch.tensor([1, 2, 3] * 4)) for _ in range(2)]
    first = alg.training_step(*batches[0])
    opt.step()
    with torch.no_grad():
        after = alg.task_losses(alg(batches[0][0], batches[0][2]), batches[0][1])
    reference = make(FAMO, w_lr=0.1)
    reference.update_logits(first.task_losses, after)
    assert torch.equal(alg.logits, torch.zeros(3))  # nothing known yet about the decrease
    opt.zero_grad()
    alg.training_step(*batches[1])
    assert torch.allclose(alg.logits, reference.logits)
    assert not torch.equal(alg.logits, torch.zeros(3))


# -- every method: absent task, checkpoint, contract ----------------------------------------------

@pytest.mark.parametrize("cls", ALL)
def test_batch_missing_a_task(cls):
    alg = make(cls)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 1, 0])
    task_id = torch.tensor([1, 3, 1, 3, 3, 1])  # task 2 absent
    for _ in range(2):
        alg.zero_grad()
        out = alg.training_step(x, y, task_id)
        alg.on_train_epoch_end(0)
    assert set(out.task_losses) == {1, 3}
    assert math.isfinite(out.loss.item())
    assert alg.heads.head(2).weight.grad is None
    assert alg.heads.head(1).weight.grad.abs().sum() > 0 and alg.heads.head(3).weight.grad.abs().sum() > 0
    if cls is UW:
        assert alg.log_variance.grad[1].item() == 0.0


def advance(alg, steps: int = 4) -> None:
    """Run steps and epoch ends on synthetic losses so every kind of state moves."""
    for i in range(steps):
        before = {1: torch.tensor(1.0 + 0.1 * i), 2: torch.tensor(2.0 - 0.2 * i), 3: torch.tensor(0.7)}
        alg.combine(before)
        if isinstance(alg, FAMO):
            alg.update_logits(before, {t: v * 0.9 ** t for t, v in before.items()})
        alg.on_train_epoch_end(i)


HYPER = {EW: {"weights": [0.5, 1.0, 2.0]}, UW: {}, DWA: {}, RLW: {"seed": 3}, GLS: {}, STCH: {"warmup_epochs": 1}, FAMO: {}}


@pytest.mark.parametrize("cls", ALL)
def test_state_dict_round_trip_gives_the_same_next_weights(cls):
    trained = make(cls, **HYPER[cls])
    advance(trained)
    if cls is UW:
        with torch.no_grad():
            trained.log_variance.add_(torch.tensor([0.3, -0.4, 0.1]))
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    fresh_hyper = dict(HYPER[cls], seed=99) if cls is RLW else HYPER[cls]
    fresh = make(cls, **fresh_hyper)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    values = {1: 0.6, 2: 1.1, 3: 0.9}
    a, b = leaves(values), leaves(values)
    assert trained.backward(a).item() == pytest.approx(fresh.backward(b).item(), rel=1e-6)
    assert grads(a) == pytest.approx(grads(b), rel=1e-6)
    untrained = make(cls, **fresh_hyper)
    c = leaves(values)
    untrained.backward(c)
    if cls not in (EW, GLS):  # stateful: the loaded state, not the constructor's, decides
        assert grads(c) != pytest.approx(grads(b), rel=1e-6)


@pytest.mark.parametrize("cls, hyper, shown", [
    (EW, {"weights": [0.5, 1.0, 2.0]}, "weights=[0.5, 1.0, 2.0]"),
    (UW, {"init_log_variance": 0.25}, "init_log_variance=0.25"),
    (DWA, {"temperature": 3.0}, "temperature=3.0"),
    (RLW, {"seed": 5}, "seed=5"),
    (STCH, {"mu": 0.5, "warmup_epochs": 2}, "mu=0.5, warmup_epochs=2"),
    (FAMO, {"w_lr": 0.01, "gamma": 0.0}, "w_lr=0.01, gamma=0.0"),
])
def test_repr_shows_hyperparameters(cls, hyper, shown):
    assert repr(make(cls, **hyper)).startswith(f"{cls.__name__}(\n  {shown}\n")


@pytest.mark.parametrize("cls", ALL)
def test_docstring_names_paper_and_documents_every_argument(cls):
    doc = inspect.getdoc(cls)
    assert "Update rule" in doc and "Output scale" in doc
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    args_section = doc.split("Args:", 1)[1]
    for name in params:
        assert f"\n    {name}: " in "\n" + args_section, f"{cls.__name__} does not document {name}"
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name not in ("self", "backbone", "heads"):
            assert p.annotation is not inspect.Parameter.empty and p.default is not inspect.Parameter.empty
    assert cls.__name__ in algorithms.BUILTIN_ALGORITHMS


@pytest.mark.parametrize("cls", ALL)
def test_trains_a_small_three_task_problem(cls):
    """Each method, with a plain Adam step, learns three separable tasks above chance."""
    torch.manual_seed(0)
    alg = make(cls, **({"warmup_epochs": 1} if cls is STCH else {}))
    opt = torch.optim.Adam(alg.parameters(), lr=0.03)
    x = torch.randn(96, 4)
    task_id = torch.arange(96) % 3 + 1
    y = (x[torch.arange(96), task_id - 1] > 0).long()  # task t: the sign of feature t
    for epoch in range(15):
        for i in range(0, 96, 24):
            opt.zero_grad()
            alg.training_step(x[i:i + 24], y[i:i + 24], task_id[i:i + 24])
            opt.step()
        alg.on_train_epoch_end(epoch)
    with torch.no_grad():
        alg.eval()
        outputs = alg(x, task_id)
    for t, o in outputs.items():
        accuracy = (o.logits.argmax(1) == y[o.index]).float().mean().item()
        assert accuracy > 0.7, (cls.__name__, t, accuracy)
