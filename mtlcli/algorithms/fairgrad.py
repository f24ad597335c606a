"""FairGrad: the update that is alpha-fair between the tasks' improvements."""

from __future__ import annotations

from torch import nn

from mtlcli.algorithms import aggregators
from mtlcli.algorithms.gradient_method import GradientMethod
from mtlcli.algorithms.jacobian import GradientPath
from mtlcli.heads import MTLHeads


class FairGrad(GradientMethod):
    """FairGrad, fair resource allocation between tasks.

    Paper: "Fair Resource Allocation in Multi-Task Learning", Hao Ban and Kaiyi Ji,
    ICML 2024. https://arxiv.org/abs/2402.15638

    Update rule: weights ``a > 0`` solving ``(K a)_i = a_i^(-1/alpha)`` for every
    task present (K the Gramian), ``d = Σ_i a_i g_i``: the alpha-fair allocation of
    the tasks' improvements ``g_i·d``. ``alpha = 1`` is proportional fairness (the
    Nash bargaining point); larger ``alpha`` approaches max-min fairness. Solved
    exactly by damped Newton on the Gramian (fast path). Raises
    ``UndefinedAggregationError`` when 0 is in the convex hull of the gradients
    (no positive solution exists) instead of switching rules.

    Output scale: none imposed; ``d`` as solved (for ``alpha = 1``, ``||d||² = T``).

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        alpha: the fairness parameter, > 0.
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    config_name = "fairgrad"  # configs/mtl_algorithm/fairgrad.yaml, mtl_algorithm=fairgrad

    hyperparameters = ("alpha",)

    def __init__(self, backbone: nn.Module, heads: MTLHeads, alpha: float = 1.0,
                 gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads, aggregators.FairGrad(alpha), gradient_path)
        self.alpha = float(alpha)
