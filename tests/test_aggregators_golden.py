"""Every aggregator against the golden numbers in tests/golden/aggregators.json.

The expected values were computed independently at 60 digits (see the README
next to the shared copy). Each case is checked twice: in float32 with the case's
``atol`` and in float64 with ``atol / tol * tol_float64``; the weights too when
the case gives them (they are ``null`` when not unique).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from mtlcli.algorithms import aggregators as agg
from mtlcli.algorithms.aggregators._gradvac import gradvac_weights
from mtlcli.algorithms.aggregators._pcgrad import pcgrad_weights

GOLDEN = json.loads((Path(__file__).parent / "golden" / "aggregators.json").read_text())
CASES = GOLDEN["cases"]

# Loss weightings: tested with the loss-weighting algorithms, not here.
NOT_AGGREGATORS = ["dwa", "uw", "db_mtl"]


def _index_order(T: int) -> list[list[int]]:
    return [[j for j in range(T) if j != i] for i in range(T)]


def _gramian_method(make: Callable[[dict], agg.Aggregator]):
    """Runner for a stateless Gramian method: weights from G Gᵀ, direction from the call."""

    def run(case: dict, G: torch.Tensor):
        aggregator = make(case["params"])
        return aggregator(G), aggregator.weights(G @ G.T)

    return run


def _pcgrad(reduction: str):
    def run(case: dict, G: torch.Tensor):
        params = case["params"]
        T = G.shape[0]
        if params["order"] == _index_order(T):
            aggregator = agg.PCGrad(reduction=reduction, eps=params["eps"])
            return aggregator(G), aggregator.weights(G @ G.T)
        # Any other fixed visiting order goes through the pure function.
        w = pcgrad_weights(G @ G.T, params["order"], params["eps"], reduction)
        return w @ G, w

    return run


def _gradvac(case: dict, G: torch.Tensor):
    params = case["params"]
    T = G.shape[0]
    phi_hat = torch.tensor(params["phi_hat_init"], dtype=torch.float64)
    if params["order"] == _index_order(T):
        aggregator = agg.GradVac(beta=params["beta"], eps=params["eps"])
        aggregator.load_state_dict({"phi_hat": phi_hat})
        if "previous_G" in params:
            aggregator(torch.tensor(params["previous_G"], dtype=G.dtype))
        w = aggregator.weights(G @ G.T)
        return w @ G, w
    assert "previous_G" not in params
    w, _ = gradvac_weights(G @ G.T, phi_hat, params["order"], params["beta"], params["eps"])
    return w @ G, w


RUNNERS: dict[str, Callable] = {
    "mean": _gramian_method(lambda p: agg.Mean()),
    "sum": _gramian_method(lambda p: agg.Sum()),
    "mgda": _gramian_method(lambda p: agg.MGDA()),
    "upgrad": _gramian_method(lambda p: agg.UPGrad(reg_eps=p["reg_eps"], norm_eps=p["norm_eps"])),
    "dualproj": _gramian_method(lambda p: agg.DualProj(reg_eps=p["reg_eps"], norm_eps=p["norm_eps"])),
    "pcgrad_sum": _pcgrad("sum"),
    "pcgrad_mean": _pcgrad("mean"),
    "gradvac": _gradvac,
    "cagrad": _gramian_method(lambda p: agg.CAGrad(c=p["c"], rescale=p["rescale"])),
    # The closed form is the default; t3_d2 names it explicitly (params.form).
    "imtl_g": _gramian_method(lambda p: agg.IMTLG(form="closed_form")),
    "imtl_g_pinv": _gramian_method(lambda p: agg.IMTLG(form="pinv")),
    "aligned_mtl_sum": _gramian_method(lambda p: agg.AlignedMTL(reduction="sum")),
    "aligned_mtl_mean": _gramian_method(lambda p: agg.AlignedMTL(reduction="mean")),
    "nash_mtl": _gramian_method(lambda p: agg.NashMTL(max_norm=p["max_norm"])),
}

AGGREGATOR_CASES = [case for case in CASES if case["method"] not in NOT_AGGREGATORS]


def test_every_golden_method_is_either_run_or_listed_as_not_an_aggregator():
    methods = {case["method"] for case in CASES}
    assert methods == set(RUNNERS) | set(NOT_AGGREGATORS)
    assert len(AGGREGATOR_CASES) == len(CASES) - sum(case["method"] in NOT_AGGREGATORS for case in CASES)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", AGGREGATOR_CASES, ids=[case["id"] for case in AGGREGATOR_CASES])
def test_golden(case: dict, dtype: torch.dtype):
    G = torch.tensor(case["G"], dtype=dtype)
    direction, weights = RUNNERS[case["method"]](case, G)
    assert direction.dtype == dtype and weights.dtype == dtype

    relative = 1.0 if dtype == torch.float32 else case["tol_float64"] / case["tol"]
    expected = torch.tensor(case["expected"], dtype=torch.float64)
    error = (direction.double() - expected).abs().max().item()
    assert error <= case["atol"] * relative, f"direction off by {error:.3g}"

    if case["expected_weights"] is not None:
        relative = 1.0 if dtype == torch.float32 else case["tol_float64"] / case["weights_tol"]
        expected_weights = torch.tensor(case["expected_weights"], dtype=torch.float64)
        error = (weights.double() - expected_weights).abs().max().item()
        assert error <= case["weights_atol"] * relative, f"weights off by {error:.3g}"
    else:
        # Weights are not unique there, but whatever the method returns must give its direction.
        torch.testing.assert_close(weights @ G, direction, rtol=1e-5, atol=1e-6 * G.abs().max().item())


CAGRAD_CASES = [case for case in CASES if case["method"] == "cagrad"]


@pytest.mark.parametrize("case", CAGRAD_CASES, ids=[case["id"] for case in CAGRAD_CASES])
def test_cagrad_search_fallback_alone_meets_the_golden_numbers(case: dict, monkeypatch):
    """The closed-form face growing usually answers first; the safeguarded search must be
    exact on its own too."""
    from mtlcli.algorithms.aggregators import _cagrad

    monkeypatch.setattr(_cagrad, "_grow_support", lambda K, b, rho: None)
    G = torch.tensor(case["G"], dtype=torch.float64)
    direction, _ = RUNNERS["cagrad"](case, G)
    expected = torch.tensor(case["expected"], dtype=torch.float64)
    error = (direction - expected).abs().max().item()
    assert error <= case["atol"] * case["tol_float64"] / case["tol"], f"direction off by {error:.3g}"
