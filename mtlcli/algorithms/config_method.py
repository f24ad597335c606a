"""ConFIG: a conflict-free direction with equal cosines to every task gradient."""

from __future__ import annotations

from torch import nn

from mtlcli.algorithms import aggregators
from mtlcli.algorithms.gradient_method import GradientMethod
from mtlcli.algorithms.jacobian import GradientPath
from mtlcli.heads import MTLHeads


class ConFIG(GradientMethod):
    """ConFIG, conflict-free inverse gradients.

    Paper: "ConFIG: Towards Conflict-free Training of Physics Informed Neural
    Networks", Qiang Liu, Mengyu Chu, Nils Thuerey, ICLR 2025.
    https://arxiv.org/abs/2408.11104

    Update rule: ``v = pinv(U) 1`` with ``U`` the unit task gradients (the shortest
    vector with cosine-weighted inner product 1 with every unit gradient),
    ``v̂ = v / ||v||`` and ``d = (Σ_i g_i·v̂) v̂``. Computed from the Gramian (fast
    path). Zero gradients are left out; exactly opposite gradients give ``d = 0``.

    Output scale: the sum of the gradients' projections on the common direction
    (the sum of the gradients when they are all equal).

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    config_name = "config"  # configs/mtl_algorithm/config.yaml, mtl_algorithm=config

    def __init__(self, backbone: nn.Module, heads: MTLHeads, gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads, aggregators.ConFIG(), gradient_path)
