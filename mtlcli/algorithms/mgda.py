"""MGDA: step along the minimum-norm point of the convex hull of the task gradients."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from mtlcli.algorithms import aggregators
from mtlcli.algorithms.gradient_method import GradientMethod, Update
from mtlcli.algorithms.jacobian import GradientPath, RepresentationGradients, TaskGradients
from mtlcli.errors import MtlcliError
from mtlcli.heads import MTLHeads


class MGDA(GradientMethod):
    """MGDA, multiple-gradient descent, with MGDA-UB on the shared representation.

    Paper: "Multi-Task Learning as Multi-Objective Optimization", Ozan Sener and
    Vladlen Koltun, NeurIPS 2018. https://arxiv.org/abs/1810.04650

    Update rule: with ``ĝ_t = g_t / n_t`` (``n_t`` set by ``normalization``),
    ``s* = argmin_{s in simplex} ||Σ_t s_t ĝ_t||²`` (solved exactly) and
    ``d = Σ_t s*_t ĝ_t``. ``d`` has a non-negative inner product with every task
    gradient; it is 0 when 0 is in the hull (Pareto-stationary point).

    MGDA-UB (``mgda_ub=True``) computes the weights from the gradients w.r.t. the
    backbone output Z instead of the parameters (one backward, no per-task
    Jacobian), then backpropagates ``Σ_t s*_t ∇_Z L_t / n_t``. In a mixed batch
    task t's loss reads only task t's rows of Z, so the representation gradients
    have **disjoint supports** and their Gramian is diagonal,
    ``K = diag(n_t²)`` with ``n_t = ||∇_Z L_t||``. The min-norm problem then has the
    closed form ``s*_t = (1/n_t²) / Σ_s (1/n_s²)``: MGDA-UB sees no conflict at all
    and reduces to inverse-squared-norm weighting (each task's weighted
    representation gradient has norm proportional to ``1/n_t``); with
    ``normalization='l2'`` it becomes ``1/(T n_t)``, every task's representation
    gradient rescaled to the same norm. A task whose representation gradient is
    zero takes all the weight and the step is zero. The conflicts MGDA resolves
    live in the shared parameters' Jacobian, which MGDA-UB never looks at here;
    it is exact on BatchNorm backbones too (the head side is always row-wise).

    Output scale: a convex combination of the normalised gradients (with
    ``normalization='none'`` the weights sum to 1: mean-like scale).

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        normalization: gradient normaliser ``n_t``: ``none`` (1), ``l2`` (``||g_t||``),
            ``loss`` (the task's loss), ``loss+`` (loss times ``||g_t||``), as in LibMTL.
        mgda_ub: compute the weights on the shared representation (MGDA-UB) instead of
            the shared parameters.
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``
            (unused with ``mgda_ub``, which needs one backward on any backbone).
    """

    hyperparameters = ("normalization", "mgda_ub")

    def __init__(self, backbone: nn.Module, heads: MTLHeads,
                 normalization: Literal["none", "l2", "loss", "loss+"] = "none", mgda_ub: bool = False,
                 gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads, aggregators.MGDA(normalization), gradient_path)
        self.normalization = normalization
        self.mgda_ub = bool(mgda_ub)

    def task_gradients(self, task_losses: dict[int, Tensor]) -> TaskGradients | RepresentationGradients:
        if self.mgda_ub:
            if self.distributed_step is not None:
                raise MtlcliError("MGDA with mgda_ub=true does not support several processes yet; "
                                  "set mtl_algorithm.mgda_ub=false or train with one process")
            return self.engine.representation_gradients(task_losses)
        return super().task_gradients(task_losses)

    def aggregate(self, grads, losses: Tensor, task_ids: list[int]) -> Update:
        return Update(weights=self.aggregator.weights(grads.gramian, task_ids, losses=losses))

