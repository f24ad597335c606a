"""IMTL: impartial multi-task learning (equal projections, learned loss scales, or both)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from mtlcli.algorithms import aggregators
from mtlcli.algorithms.gradient_method import GradientMethod, Update
from mtlcli.algorithms.jacobian import GradientPath, TaskGradients
from mtlcli.heads import MTLHeads

VARIANTS = ("imtl_g", "imtl_l", "both")


class IMTL(GradientMethod):
    """IMTL, impartial multi-task learning: IMTL-G, IMTL-L or both (the paper's IMTL).

    Paper: "Towards Impartial Multi-task Learning", Liyang Liu, Yi Li, Zhanghui
    Kuang, Jing-Hao Xue, Yimin Chen, Wenming Yang, Qingmin Liao, Wayne Zhang,
    ICLR 2021. https://openreview.net/forum?id=IMPnRXEWpvr

    Update rule:

    * IMTL-L (loss balance): a learned scale ``s_t`` per task turns the loss into
      ``e^{s_t} L_t - s_t``; ``s`` is a parameter of this module, stepped by the same
      optimizer with its gradient ``e^{s_t} L_t - 1`` (so ``e^{s_t}`` tracks
      ``1/L_t``: every scaled loss is pushed towards 1). Alone, the shared update is
      ``Σ_t e^{s_t} g_t``.
    * IMTL-G (gradient balance): weights ``α = K⁻¹n / (1ᵀK⁻¹n)`` (``n_t = ||g_t||``,
      K the Gramian) so that ``d = Σ_t α_t g_t`` has the same projection on every
      unit task gradient; weights sum to 1 and may be negative.
    * both: IMTL-G applied to the scaled gradients ``e^{s_t} g_t``.

    Output scale: IMTL-G: weights summing to 1 (mean-like); IMTL-L: a sum with
    weights ``e^{s_t}`` (1 at the start); both: IMTL-G's affine combination of the
    scaled gradients. Heads get ``∇L_t`` (imtl_g) or ``e^{s_t} ∇L_t`` (with IMTL-L).
    Runs on the Gramian (fast path). State: ``loss_scale`` (a parameter).

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        variant: ``imtl_g``, ``imtl_l`` or ``both`` (the paper's full method).
        form: how IMTL-G solves for its weights: ``closed_form`` (the paper's and
            LibMTL's, well defined for zero, identical and T > d gradients) or
            ``pinv`` (torchjd's pseudo-inverse form).
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    hyperparameters = ("variant", "form")

    def __init__(self, backbone: nn.Module, heads: MTLHeads, variant: Literal["imtl_g", "imtl_l", "both"] = "both",
                 form: Literal["closed_form", "pinv"] = "closed_form", gradient_path: GradientPath = "auto"):
        if variant not in VARIANTS:
            raise ValueError(f"IMTL variant must be one of {VARIANTS}, got {variant!r}")
        super().__init__(backbone, heads, None if variant == "imtl_l" else aggregators.IMTLG(form), gradient_path)
        self.variant, self.form = variant, form
        if variant == "imtl_g":
            self.register_parameter("loss_scale", None)
        else:
            self.loss_scale = nn.Parameter(torch.zeros(self.num_tasks))

    @property
    def needs_jacobian(self) -> bool:
        return False

    def aggregate(self, grads: TaskGradients, losses: Tensor, task_ids: list[int]) -> Update:
        if self.variant == "imtl_g":
            return Update(weights=self.aggregator.weights(grads.gramian, task_ids))
        slots = self.slots(task_ids, self.loss_scale.device)
        scale = self.loss_scale.detach()[slots].exp()
        # d/ds (e^s L - s) = e^s L - 1, handed to the optimizer like any gradient
        if self.loss_scale.grad is None:
            self.loss_scale.grad = torch.zeros_like(self.loss_scale)
        self.loss_scale.grad.index_add_(0, slots, scale * losses.to(scale) - 1)
        if self.variant == "imtl_l":
            return Update(weights=scale, head_weights=scale)
        K = grads.gramian
        s = scale.to(K)
        alpha = self.aggregator.weights(K * s[:, None] * s[None, :], task_ids)
        return Update(weights=alpha * s, head_weights=scale)
