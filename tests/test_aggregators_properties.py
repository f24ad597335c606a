"""Properties the aggregators promise, checked on generated inputs (hypothesis,
bounded so the file stays fast) and on hand-built degenerate matrices."""

from __future__ import annotations

import inspect
import io
import itertools
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtlcli.algorithms import aggregators as agg
from mtlcli.algorithms.aggregators._solvers import active_set_qp, min_norm_weights, project_onto_simplex

# Derandomized so a run is reproducible; AGG_EXAMPLES=500 searches deeper.
EXAMPLES = int(os.environ.get("AGG_EXAMPLES", 30))
FAST = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def matrices(draw, min_tasks=1, max_tasks=5, min_dim=1, max_dim=6):
    """A float64 gradient matrix with entries on a coarse grid (so exact ties, zero
    rows and repeated rows occur) and a random overall scale."""
    T = draw(st.integers(min_tasks, max_tasks))
    d = draw(st.integers(min_dim, max_dim))
    entries = draw(st.lists(st.integers(-4, 4), min_size=T * d, max_size=T * d))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    return torch.tensor(entries, dtype=torch.float64).reshape(T, d) * scale


def generic(seed: int, T: int, d: int) -> torch.Tensor:
    """A generic (full row rank when T <= d, no ties) float64 gradient matrix."""
    return torch.randn(T, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def tol(G: torch.Tensor) -> float:
    return 1e-9 * max(1.0, float(G.abs().max()) ** 2)


# Every aggregator, built with its defaults (exact rules where there is a choice).
STATELESS = {
    "Mean": agg.Mean,
    "Sum": agg.Sum,
    "MGDA": agg.MGDA,
    "UPGrad": agg.UPGrad,
    "DualProj": agg.DualProj,
    "PCGrad": agg.PCGrad,
    "CAGrad": agg.CAGrad,
    "IMTLG": agg.IMTLG,
    "IMTLG-pinv": lambda: agg.IMTLG(form="pinv"),
    "NashMTL": agg.NashMTL,
    "AlignedMTL": agg.AlignedMTL,
    "FairGrad": agg.FairGrad,
    "ConFIG": agg.ConFIG,
}
ALL = {**STATELESS, "GradVac": agg.GradVac, "GradDrop": agg.GradDrop, "MoCo": agg.MoCo}
# Rules with no answer when 0 is in the convex hull of the rows (they raise).
BARGAINING = {"NashMTL", "FairGrad"}


# -- non-conflicting ------------------------------------------------------------

@pytest.mark.parametrize("name", ["MGDA", "UPGrad", "DualProj"])
@FAST
@given(G=matrices())
def test_non_conflicting_direction(name, G):
    d = STATELESS[name]()(G)
    assert (G @ d >= -tol(G)).all()


@FAST
@given(G=matrices(min_tasks=2, max_tasks=2))
def test_pcgrad_is_non_conflicting_for_two_tasks(G):
    d = agg.PCGrad()(G)
    assert (G @ d >= -tol(G)).all()


# -- optimality of the solved problems ------------------------------------------

@FAST
@given(G=matrices(), seed=st.integers(0, 2**16))
def test_mgda_is_the_min_norm_point_of_the_hull(G, seed):
    w = agg.MGDA().weights(G @ G.T)
    d = w @ G
    assert (w >= 0).all() and math.isclose(float(w.sum()), 1.0, rel_tol=1e-12)
    # Optimality: every row has g_i·d >= ||d||², so no vertex lowers the norm.
    assert (G @ d >= float(d @ d) - tol(G)).all()
    other = torch.distributions.Dirichlet(torch.ones(G.shape[0], dtype=torch.float64)).sample()
    assert float((other @ G).norm()) >= float(d.norm()) - 1e-9 * max(1.0, float(G.abs().max()))


@FAST
@given(G=matrices())
def test_dualproj_is_the_projection_of_the_mean_onto_the_dual_cone(G):
    w = agg.DualProj().weights(G @ G.T)
    T = G.shape[0]
    d, g0 = w @ G, G.mean(dim=0)
    assert (w >= 1 / T - 1e-12).all()  # d - g0 lies in the cone of the rows
    assert (G @ d >= -tol(G)).all()
    assert abs(float((d - g0) @ d)) <= tol(G)  # projection onto a cone: residual ⟂ d


@FAST
@given(G=matrices())
def test_upgrad_is_the_sum_of_projections_and_the_mean_when_nothing_conflicts(G):
    T = G.shape[0]
    w = agg.UPGrad().weights(G @ G.T)
    assert (w >= 1 / T - 1e-12).all()
    if bool(((G @ G.T) >= 0).all()):
        torch.testing.assert_close(agg.UPGrad()(G), G.mean(dim=0), rtol=1e-9, atol=tol(G))


@pytest.mark.parametrize("c", [0.2, 0.5, 0.9])
@FAST
@given(G=matrices(min_tasks=2, min_dim=2), seed=st.integers(0, 2**16))
def test_cagrad_maximises_the_worst_improvement_in_the_ball(c, G, seed):
    T = G.shape[0]
    g0 = G.mean(dim=0)
    d = agg.CAGrad(c=c, rescale=0)(G)
    rho = c * float(g0.norm())
    assert float((d - g0).norm()) <= rho * (1 + 1e-9) + 1e-12
    # No point of the ball does better in the worst case.
    gen = torch.Generator().manual_seed(seed)
    directions = torch.randn(200, G.shape[1], generator=gen, dtype=torch.float64)
    points = g0 + rho * directions / directions.norm(dim=1, keepdim=True)
    best = float((points @ G.T).min(dim=1).values.max())
    assert float((G @ d).min()) >= best - tol(G)
    assert T == G.shape[0]


@FAST
@given(seed=st.integers(0, 2**16), T=st.integers(1, 5), extra=st.integers(0, 3))
def test_nash_mtl_solves_the_bargaining_equations(seed, T, extra):
    G = generic(seed, T, T + extra)
    a = agg.NashMTL(max_norm=0).weights(G @ G.T)
    K = G @ G.T
    torch.testing.assert_close(a * (K @ a), torch.ones(T, dtype=torch.float64), rtol=1e-10, atol=1e-10)
    clipped = agg.NashMTL(max_norm=1.0)(G)
    assert math.isclose(float(clipped.norm()), 1.0, rel_tol=1e-10)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 5.0])
@FAST
@given(seed=st.integers(0, 2**16), T=st.integers(1, 4))
def test_fairgrad_solves_its_fairness_equations(alpha, seed, T):
    G = generic(seed, T, T + 2)
    a = agg.FairGrad(alpha=alpha).weights(G @ G.T)
    assert (a > 0).all()
    torch.testing.assert_close((G @ G.T) @ a, a ** (-1 / alpha), rtol=1e-10, atol=0)


def test_fairgrad_with_alpha_one_is_nash_mtl_without_clipping():
    G = generic(3, 4, 6)
    torch.testing.assert_close(agg.FairGrad(alpha=1.0)(G), agg.NashMTL(max_norm=0)(G), rtol=1e-10, atol=1e-12)


@FAST
@given(seed=st.integers(0, 2**16), T=st.integers(1, 5), extra=st.integers(0, 3))
def test_imtlg_projects_equally_on_every_unit_gradient(seed, T, extra):
    G = generic(seed, T, T + extra) * torch.logspace(-2, 2, T, dtype=torch.float64)[:, None]
    for form in ("closed_form", "pinv"):
        w = agg.IMTLG(form=form).weights(G @ G.T)
        d = w @ G
        projections = (G / G.norm(dim=1, keepdim=True)) @ d
        assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-10)
        # Random square G can be ill-conditioned: the tolerance follows the condition
        # number, of the unit rows for the closed form (it rescales rows exactly) and
        # of G itself for torchjd's pinv of the raw Gramian.
        conditioning = float(torch.linalg.cond(G / G.norm(dim=1, keepdim=True) if form == "closed_form" else G))
        atol = (1e-10 + 1e-14 * conditioning**2) * float(projections.abs().max())
        torch.testing.assert_close(projections, projections[:1].expand(T), rtol=0, atol=atol)


@FAST
@given(seed=st.integers(0, 2**16), T=st.integers(2, 5), extra=st.integers(0, 3))
def test_config_direction_has_equal_cosines_and_projection_length(seed, T, extra):
    G = generic(seed, T, T + extra)
    d = agg.ConFIG()(G)
    unit = d / d.norm()
    cosines = (G / G.norm(dim=1, keepdim=True)) @ unit
    conditioning = float(torch.linalg.cond(G / G.norm(dim=1, keepdim=True)))
    atol = (1e-10 + 1e-14 * conditioning**2) * float(cosines.abs().max())
    torch.testing.assert_close(cosines, cosines[:1].expand(T), rtol=0, atol=atol)
    assert float(cosines[0]) > 0  # conflict-free
    torch.testing.assert_close(d.norm(), (G @ unit).sum(), rtol=1e-10, atol=0)


@FAST
@given(seed=st.integers(0, 2**16), T=st.integers(1, 5), extra=st.integers(0, 3))
def test_aligned_mtl_balances_the_gradients(seed, T, extra):
    G = generic(seed, T, T + extra)
    K = (G @ G.T).numpy()
    eigenvalues, V = np.linalg.eigh(K)
    B = np.sqrt(eigenvalues.min()) * (V / np.sqrt(eigenvalues)) @ V.T
    aligned = torch.from_numpy(B) @ G  # rows orthogonal, all of norm sqrt(l_min)
    gram = aligned @ aligned.T
    torch.testing.assert_close(gram, eigenvalues.min() * torch.eye(T, dtype=torch.float64), rtol=0, atol=1e-9 * float(K.max()))
    torch.testing.assert_close(agg.AlignedMTL()(G), aligned.sum(dim=0), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(agg.AlignedMTL(reduction="mean")(G), aligned.mean(dim=0), rtol=1e-9, atol=1e-12)


# -- permutations ---------------------------------------------------------------

ORDER_FREE = [name for name in STATELESS if name != "PCGrad"]


@pytest.mark.parametrize("name", ORDER_FREE)
@settings(max_examples=max(5, EXAMPLES // 2), deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16), T=st.integers(2, 5), extra=st.integers(0, 2), perm_seed=st.integers(0, 1000))
def test_permuting_tasks_permutes_weights_and_keeps_the_direction(name, seed, T, extra, perm_seed):
    G = generic(seed, T, T + extra)
    perm = torch.randperm(T, generator=torch.Generator().manual_seed(perm_seed))
    aggregator = STATELESS[name]()
    w, w_perm = aggregator.weights(G @ G.T), aggregator.weights(G[perm] @ G[perm].T)
    torch.testing.assert_close(w_perm, w[perm], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(aggregator(G[perm]), aggregator(G), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", ["MGDA", "UPGrad", "DualProj", "CAGrad", "IMTLG", "AlignedMTL", "ConFIG"])
def test_permutation_keeps_the_direction_on_degenerate_input(name):
    G = torch.tensor([[1.0, 2.0, 0.0], [1.0, 2.0, 0.0], [-1.0, 0.5, 0.0], [0.0, 0.0, 0.0], [2.0, -1.0, 0.0]], dtype=torch.float64)
    aggregator = STATELESS[name]()
    expected = aggregator(G)
    for perm in itertools.islice(itertools.permutations(range(5)), 0, 120, 7):
        torch.testing.assert_close(aggregator(G[list(perm)]), expected, rtol=1e-9, atol=1e-12)


# -- identical, zero and degenerate rows ------------------------------------------

IDENTICAL_ROWS_GIVE = {  # method -> multiple of the common row, for T identical rows
    "Mean": lambda T, c: 1.0,
    "Sum": lambda T, c: float(T),
    "MGDA": lambda T, c: 1.0,
    "UPGrad": lambda T, c: 1.0,
    "DualProj": lambda T, c: 1.0,
    "PCGrad": lambda T, c: float(T),
    "IMTLG": lambda T, c: 1.0,
    "IMTLG-pinv": lambda T, c: 1.0,
    "AlignedMTL": lambda T, c: float(T),
    "ConFIG": lambda T, c: float(T),
}


@pytest.mark.parametrize("name", list(IDENTICAL_ROWS_GIVE))
@pytest.mark.parametrize("T", [1, 2, 4])
def test_identical_rows_give_that_row_at_the_documented_scale(name, T):
    g = torch.tensor([0.5, -1.25, 2.0], dtype=torch.float64)
    G = g.expand(T, 3).clone()
    torch.testing.assert_close(STATELESS[name]()(G), IDENTICAL_ROWS_GIVE[name](T, 0) * g, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("T", [1, 3])
def test_identical_rows_for_the_rules_with_their_own_scale(T):
    g = torch.tensor([0.5, -1.25, 2.0], dtype=torch.float64)
    G = g.expand(T, 3).clone()
    c = 0.4
    torch.testing.assert_close(agg.CAGrad(c=c, rescale=0)(G), (1 + c) * g)
    torch.testing.assert_close(agg.CAGrad(c=c, rescale=2)(G), g)
    torch.testing.assert_close(agg.NashMTL(max_norm=0)(G), math.sqrt(T) * g / g.norm())
    torch.testing.assert_close(agg.GradDrop()(G), T * g)
    torch.testing.assert_close(agg.GradVac()(G), T * g)


DEGENERATE = {
    "zero row": [[1.0, 2.0, -1.0], [0.0, 0.0, 0.0]],
    "all zero": [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
    "opposite": [[1.0, -2.0, 0.5], [-1.0, 2.0, -0.5]],
    "opposite plus one": [[1.0, -2.0, 0.5], [-1.0, 2.0, -0.5], [0.0, 1.0, 1.0]],
    "more tasks than dims": [[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8], [0.3, 0.3]],
    "collinear, different norms": [[1.0, 2.0], [3.0, 6.0]],
    "one task": [[3.0, -4.0]],
    "one zero task": [[0.0, 0.0, 0.0]],
}


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("case", list(DEGENERATE))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_degenerate_inputs_give_finite_directions_or_a_clear_error(name, case, dtype):
    G = torch.tensor(DEGENERATE[case], dtype=dtype)
    aggregator = ALL[name]()
    try:
        d = aggregator(G)
    except agg.UndefinedAggregationError as error:
        assert name in BARGAINING, f"{name} raised on {case}: {error}"
        assert "convex hull" in str(error)
        return
    assert d.dtype == dtype and d.shape == (G.shape[1],)
    assert torch.isfinite(d).all()
    if name in BARGAINING:
        assert case in ("collinear, different norms", "one task"), f"{name} should raise on {case}"
    if aggregator.gramian_only:
        w = aggregator.weights(G @ G.T) if name not in ("GradVac",) else None
        if w is not None:
            assert torch.isfinite(w).all()
            torch.testing.assert_close(w @ G, d, rtol=1e-5, atol=1e-6)


def test_zero_row_answers_of_the_exact_rules():
    G = torch.tensor([[1.0, 2.0, -1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    zero = torch.zeros(3, dtype=torch.float64)
    torch.testing.assert_close(agg.MGDA()(G), zero)  # 0 is in the hull: Pareto-stationary
    torch.testing.assert_close(agg.UPGrad()(G), G.mean(dim=0))  # nothing conflicts with a zero row
    torch.testing.assert_close(agg.IMTLG()(G), G[0])  # the zero row gets weight 0
    with pytest.raises(agg.UndefinedAggregationError, match="task\\(s\\) 7 have a zero gradient"):
        agg.NashMTL().weights(G @ G.T, task_ids=[3, 7])


def test_cagrad_degenerate_rule_is_the_nearest_optimal_direction_to_the_mean():
    # 0 in the hull (opposite rows) and c large enough that the ball reaches the dual cone.
    G = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    d = agg.CAGrad(c=0.9, rescale=0)(G)
    g0 = G.mean(dim=0)
    expected = agg.DualProj()(G)  # projection of the mean onto {d : G d >= 0}
    torch.testing.assert_close(d, expected)
    assert float((d - g0).norm()) <= 0.9 * float(g0.norm())
    assert float((G @ d).min()) >= -1e-12


def test_imtlg_more_tasks_than_dimensions_forms_differ_as_documented():
    # Rows positively span the plane: equal projections force d = 0, with unique weights.
    G = torch.tensor([[1.0, 0.0], [-0.5, 0.8], [-0.25, -1.0]], dtype=torch.float64)
    w = agg.IMTLG().weights(G @ G.T)
    torch.testing.assert_close(w @ G, torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-12)
    assert math.isclose(float(w.sum()), 1.0) and (w > 0).all()
    assert float(agg.IMTLG(form="pinv")(G).norm()) > 1.0  # torchjd's generalisation does not


# -- scaling ----------------------------------------------------------------------

HOMOGENEOUS = ["Mean", "Sum", "MGDA", "UPGrad", "DualProj", "PCGrad", "CAGrad", "IMTLG", "AlignedMTL", "ConFIG"]


@pytest.mark.parametrize("name", HOMOGENEOUS)
@pytest.mark.parametrize("s", [1e-3, 7.0])
def test_scaling_all_gradients_scales_the_direction(name, s):
    G = generic(11, 3, 5)
    aggregator = STATELESS[name]()
    torch.testing.assert_close(aggregator(s * G), s * aggregator(G), rtol=1e-9, atol=0)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_bargaining_rules_scale_as_their_equations_say(alpha):
    G, s = generic(12, 3, 5), 5.0
    # K a = a^(-1/alpha) with K -> s²K gives a -> s^(-2 alpha/(alpha+1)) a.
    exponent = 1 - 2 * alpha / (alpha + 1)
    torch.testing.assert_close(agg.FairGrad(alpha=alpha)(s * G), s**exponent * agg.FairGrad(alpha=alpha)(G))
    torch.testing.assert_close(agg.NashMTL(max_norm=0)(s * G), agg.NashMTL(max_norm=0)(G))


def test_mgda_l2_normalisation_ignores_row_scales_and_loss_normalisation_uses_losses():
    G = generic(13, 3, 5)
    scales = torch.tensor([[1e-3], [1.0], [50.0]], dtype=torch.float64)
    l2 = agg.MGDA(normalization="l2")
    torch.testing.assert_close(l2(G * scales), l2(G))
    losses = torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)
    torch.testing.assert_close(agg.MGDA(normalization="loss")(G * losses[:, None], losses=losses), agg.MGDA()(G))
    norms = G.norm(dim=1)
    torch.testing.assert_close(
        agg.MGDA(normalization="loss+")(G, losses=losses), agg.MGDA()(G / (losses * norms)[:, None])
    )
    with pytest.raises(ValueError, match="needs the task losses"):
        agg.MGDA(normalization="loss")(G)
    with pytest.raises(ValueError, match="finite positive losses"):
        agg.MGDA(normalization="loss")(G, losses=[1.0, 0.0, 1.0])


# -- PCGrad and GradVac as Gramian weights --------------------------------------------

def _pcgrad_in_coordinates(G, order, eps, reduction):
    projected = []
    for i in range(G.shape[0]):
        p = G[i].clone()
        for j in order[i]:
            dot = p @ G[j]
            if dot < 0:
                p = p - dot / (G[j] @ G[j] + eps) * G[j]
        projected.append(p)
    stacked = torch.stack(projected)
    return stacked.sum(0) if reduction == "sum" else stacked.mean(0)


@FAST
@given(G=matrices(min_tasks=2), eps=st.sampled_from([0.0, 1e-8]), reduction=st.sampled_from(["sum", "mean"]))
def test_pcgrad_weights_match_projections_in_coordinates(G, eps, reduction):
    T = G.shape[0]
    order = [[j for j in range(T) if j != i] for i in range(T)]
    expected = _pcgrad_in_coordinates(G, order, eps, reduction)
    torch.testing.assert_close(agg.PCGrad(reduction=reduction, eps=eps)(G), expected, rtol=1e-9, atol=tol(G))


def test_pcgrad_random_order_is_seeded_and_checkpointed():
    G = generic(14, 4, 6)
    first, second = agg.PCGrad(order="random", seed=3), agg.PCGrad(order="random", seed=3)
    outputs = [first(G) for _ in range(3)]
    torch.testing.assert_close(torch.stack([second(G) for _ in range(3)]), torch.stack(outputs))
    assert not torch.allclose(outputs[0], outputs[1]) or not torch.allclose(outputs[1], outputs[2])
    resumed = agg.PCGrad(order="random", seed=99)
    resumed.load_state_dict(first.state_dict())
    torch.testing.assert_close(resumed(G), first(G))


def test_gradvac_with_zero_targets_is_pcgrad_up_to_eps():
    G = generic(15, 4, 6)
    torch.testing.assert_close(agg.GradVac(eps=0.0)(G), agg.PCGrad()(G), rtol=1e-9, atol=1e-12)


def test_gradvac_state_is_keyed_by_task_id():
    aggregator = agg.GradVac(beta=0.5)
    G = generic(16, 3, 5)
    aggregator(G, task_ids=[1, 2, 4])
    phi = aggregator.state_dict()["phi_hat"]
    assert phi.shape == (4, 4)
    assert (phi[2] == 0).all() and (phi[:, 2] == 0).all()  # task 3 never seen
    aggregator(G[:2], task_ids=[4, 1])
    after = aggregator.state_dict()["phi_hat"]
    torch.testing.assert_close(after[1], phi[1])  # task 2 absent: its targets untouched
    assert after[3, 0] != phi[3, 0]
    # Rows are matched by id: the same call with rows swapped gives the same state.
    swapped = agg.GradVac(beta=0.5)
    swapped(G, task_ids=[1, 2, 4])
    swapped(G[[1, 0]], task_ids=[1, 4])
    torch.testing.assert_close(swapped.state_dict()["phi_hat"], after)


# -- state ---------------------------------------------------------------------------

STATEFUL = {
    "GradVac": lambda: agg.GradVac(order="random", seed=5),
    "PCGrad": lambda: agg.PCGrad(order="random", seed=5),
    "GradDrop": lambda: agg.GradDrop(seed=5),
    "MoCo": agg.MoCo,
}


@pytest.mark.parametrize("name", list(STATEFUL))
def test_state_dict_round_trip_through_a_weights_only_checkpoint(name):
    G = generic(17, 3, 6)
    original = STATEFUL[name]()
    for step in range(3):
        original(G * (step + 1), task_ids=[1, 2, 5])
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed = STATEFUL[name]()
    resumed.load_state_dict(state)
    for step in range(2):
        torch.testing.assert_close(resumed(G - step, task_ids=[5, 1, 2]), original(G - step, task_ids=[5, 1, 2]))


@pytest.mark.parametrize("name", list(STATELESS))
def test_stateless_aggregators_have_empty_state(name):
    aggregator = STATELESS[name]()
    assert aggregator.state_dict() == {} or name == "PCGrad"
    aggregator.load_state_dict({})


def test_moco_tracks_each_task_and_leaves_absent_tasks_alone():
    moco = agg.MoCo(beta=0.5, beta_sigma=0.0, gamma=0.1, gamma_sigma=0.0)
    G = generic(18, 3, 4)
    moco(G, task_ids=[1, 2, 3])
    state = moco.state_dict()
    torch.testing.assert_close(state["tracked"], 0.5 * G)  # y = 0 - 0.5 (0 - g)
    assert math.isclose(float(state["weights"].sum()), 1.0)
    moco(G[:2], task_ids=[3, 1])
    after = moco.state_dict()
    torch.testing.assert_close(after["tracked"][1], state["tracked"][1])  # task 2 absent
    torch.testing.assert_close(after["tracked"][2], 0.5 * state["tracked"][2] + 0.5 * G[0])  # task 3 was row 0
    with pytest.raises(ValueError, match="gradients of size 4"):
        moco(torch.ones(2, 5, dtype=torch.float64))


def test_graddrop_keeps_one_sign_per_coordinate():
    G = torch.tensor([[1.0, -2.0, 3.0, 0.0], [-1.5, 1.0, 2.0, 0.0], [0.5, -0.5, -1.0, 0.0]], dtype=torch.float64)
    positive, negative = G.clamp_min(0).sum(0), G.clamp_max(0).sum(0)
    for seed in range(20):
        d = agg.GradDrop(seed=seed)(G)
        assert all(float(d[k]) in (float(positive[k]), float(negative[k])) for k in range(4))
    torch.testing.assert_close(agg.GradDrop(leak=1.0)(G), G.sum(0))
    generator = torch.Generator().manual_seed(1)
    first = agg.GradDrop()(G, generator=generator)
    torch.testing.assert_close(agg.GradDrop()(G, generator=torch.Generator().manual_seed(1)), first)
    with pytest.raises(TypeError, match="needs the gradient coordinates"):
        agg.GradDrop().weights(G @ G.T)


# -- interface: repr, dtype, errors ------------------------------------------------------

@pytest.mark.parametrize("name", list(ALL))
def test_repr_shows_every_hyperparameter(name):
    cls = getattr(agg, name.split("-")[0])
    parameters = [
        p
        for p in inspect.signature(cls).parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    text = repr(cls())
    assert text.startswith(f"{cls.__name__}(")
    for p in parameters:
        assert f"{p.name}={p.default!r}" in text or f"{p.name}={float(p.default)!r}" in text


def test_repr_shows_non_default_values():
    assert repr(agg.UPGrad(reg_eps=1e-4)) == "UPGrad(reg_eps=0.0001, norm_eps=0.0001)"
    assert repr(agg.CAGrad(c=0.5, rescale=0)) == "CAGrad(c=0.5, rescale=0)"
    assert repr(agg.Mean()) == "Mean()"


@pytest.mark.parametrize("name", list(STATELESS))
def test_output_follows_the_input_dtype(name):
    G = generic(19, 3, 4)
    for dtype in (torch.float32, torch.float64):
        aggregator = STATELESS[name]()
        d, w = aggregator(G.to(dtype)), aggregator.weights((G @ G.T).to(dtype))
        assert d.dtype == dtype and w.dtype == dtype


@pytest.mark.parametrize("name", list(ALL))
def test_non_finite_gradients_raise_naming_the_task(name):
    G = generic(20, 3, 4)
    G[1, 2] = float("nan")
    with pytest.raises(agg.NonFiniteGradientError, match="task\\(s\\) 9"):
        ALL[name]()(G, task_ids=[2, 9, 4])


def test_task_ids_must_match_the_rows():
    G = generic(21, 3, 4)
    with pytest.raises(ValueError, match="3 gradient rows"):
        agg.UPGrad()(G, task_ids=[1, 2])
    with pytest.raises(ValueError, match="distinct"):
        agg.UPGrad()(G, task_ids=[1, 1, 2])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: agg.MGDA(normalization="max"), "normalization"),
        (lambda: agg.UPGrad(reg_eps=-1.0), "reg_eps"),
        (lambda: agg.PCGrad(reduction="max"), "reduction"),
        (lambda: agg.PCGrad(order="shuffle"), "order"),
        (lambda: agg.CAGrad(rescale=3), "rescale"),
        (lambda: agg.CAGrad(c=-0.1), "c must be"),
        (lambda: agg.IMTLG(form="lstsq"), "form"),
        (lambda: agg.AlignedMTL(scale_mode="max"), "scale_mode"),
        (lambda: agg.NashMTL(max_norm=-1.0), "max_norm"),
        (lambda: agg.FairGrad(alpha=0.0), "alpha"),
        (lambda: agg.GradDrop(leak=2.0), "leak"),
        (lambda: agg.GradVac(beta=1.5), "beta"),
        (lambda: agg.MoCo(beta=0.0), "beta"),
    ],
)
def test_bad_hyperparameters_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# -- the solvers alone -------------------------------------------------------------------

def _brute_force_nonneg_qp(Q, c, r=None):
    """Best KKT point over every support (tiny problems only)."""
    n = len(c)
    best, best_value = None, math.inf
    for size in range(0 if r is None else 1, n + 1):
        for support in itertools.combinations(range(n), size):
            S = list(support)
            x = np.zeros(n)
            if S:
                if r is None:
                    A, b = Q[np.ix_(S, S)], -c[S]
                else:
                    A = np.block([[Q[np.ix_(S, S)], r[S][:, None]], [r[S][None, :], np.zeros((1, 1))]])
                    b = np.concatenate([-c[S], [1.0]])
                solution = np.linalg.lstsq(A, b, rcond=None)[0]
                if np.abs(A @ solution - b).max() > 1e-9 * max(1.0, np.abs(A).max()):
                    continue  # the face has no stationary point
                x[S] = solution[: len(S)]
            if (x < -1e-12).any():
                continue
            value = 0.5 * x @ Q @ x + c @ x
            if value < best_value:
                best, best_value = x, value
    return best, best_value


@FAST
@given(G=matrices(max_tasks=4), lower_seed=st.integers(0, 2**16))
def test_active_set_qp_matches_brute_force(G, lower_seed):
    K = (G @ G.T).numpy()
    lower = np.random.default_rng(lower_seed).uniform(0, 1, len(K))
    x = active_set_qp(K, K @ lower)
    _, best = _brute_force_nonneg_qp(K, K @ lower)
    value = 0.5 * x @ K @ x + (K @ lower) @ x
    assert (x >= 0).all() and value <= best + 1e-9 * max(1.0, abs(best), float(np.abs(K).max()))
    w = min_norm_weights(K)
    _, best = _brute_force_nonneg_qp(K, np.zeros(len(K)), np.ones(len(K)))
    assert (w >= 0).all() and math.isclose(w.sum(), 1.0) and 0.5 * w @ K @ w <= best + 1e-9 * max(1.0, float(np.abs(K).max()))


@FAST
@given(v=st.lists(st.floats(-10, 10), min_size=1, max_size=6))
def test_simplex_projection(v):
    v = np.asarray(v)
    p = project_onto_simplex(v)
    assert (p >= 0).all() and math.isclose(p.sum(), 1.0)
    for trial in np.eye(len(v)):  # no vertex is closer than the projection
        assert np.linalg.norm(v - p) <= np.linalg.norm(v - trial) + 1e-12


def test_empty_state_resets_gradvac_and_a_foreign_device_stream_is_refused():
    G = generic(22, 3, 4)
    gradvac = agg.GradVac()
    first = gradvac(G)
    gradvac(G)
    gradvac.load_state_dict({})
    torch.testing.assert_close(gradvac(G), first)

    graddrop = agg.GradDrop()
    graddrop.load_state_dict({"generator": torch.Generator().get_state(), "generator_device": "cuda"})
    with pytest.raises(ValueError, match="saved on cuda and cannot continue on cpu"):
        graddrop(G)


def test_pcgrad_random_order_for_two_tasks_is_the_index_order():
    G = generic(23, 2, 5)
    torch.testing.assert_close(agg.PCGrad(order="random", seed=1)(G), agg.PCGrad()(G))
