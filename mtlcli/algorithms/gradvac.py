"""GradVac: steer pairwise gradient similarities towards their running targets."""

from __future__ import annotations

from typing import Literal

from torch import nn

from mtlcli.algorithms import aggregators
from mtlcli.algorithms.gradient_method import GradientMethod
from mtlcli.algorithms.jacobian import GradientPath
from mtlcli.heads import MTLHeads


class GradVac(GradientMethod):
    """GradVac, gradient vaccine (whole-model grouping).

    Paper: "Gradient Vaccine: Investigating and Improving Multi-task Optimization
    in Massively Multilingual Models", Zirui Wang, Yulia Tsvetkov, Orhan Firat,
    Yuan Cao, ICLR 2021. https://arxiv.org/abs/2010.05874

    Update rule: a target cosine ``phi_hat[i][j]`` per ordered task pair (an EMA,
    starting at 0). Per task i, ``p_i = g_i``; for each other task j, with
    ``rho = cos(p_i, g_j)`` and ``t = phi_hat[i][j]``: if ``rho < t`` then
    ``p_i <- p_i + w g_j`` with ``w = ||p_i|| (t sqrt(1-rho²) - rho sqrt(1-t²)) /
    (||g_j|| sqrt(1-t²) + eps)``; always ``phi_hat[i][j] <- (1-beta) t + beta rho``.
    ``d = Σ_i p_i``. With zero targets this is PCGrad. Runs on the Gramian (fast
    path). Targets are keyed by task id: an absent task keeps its targets; they are
    checkpointed.

    Output scale: sum of the corrected task gradients.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        beta: EMA rate of the target cosines (0.5 in the references).
        eps: added to the denominators (1e-8 in the references).
        order: ``index`` (increasing task id) or ``random`` (fresh permutations, as the references).
        seed: seed of the random visiting order.
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    config_name = "gradvac"  # configs/mtl_algorithm/gradvac.yaml, mtl_algorithm=gradvac

    hyperparameters = ("beta", "eps", "order", "seed")

    def __init__(self, backbone: nn.Module, heads: MTLHeads, beta: float = 0.5, eps: float = 1e-8,
                 order: Literal["index", "random"] = "index", seed: int = 0,
                 gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads, aggregators.GradVac(beta, eps, order, seed), gradient_path)
        self.beta, self.eps, self.order, self.seed = float(beta), float(eps), order, int(seed)
