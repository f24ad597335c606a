"""MoCo: multi-objective gradient correction with tracked task gradients."""

from __future__ import annotations

from torch import nn

from mtlcli.algorithms import aggregators
from mtlcli.algorithms.gradient_method import GradientMethod
from mtlcli.algorithms.jacobian import GradientPath
from mtlcli.heads import MTLHeads


class MoCo(GradientMethod):
    """MoCo, multi-objective gradient correction.

    Paper: "Mitigating Gradient Bias in Multi-objective Learning: A Provably
    Convergent Approach", Heshan Devaka Fernando, Han Shen, Miao Liu, Subhajit
    Chaudhury, Keerthiram Murugesan, Tianyi Chen, ICLR 2023.
    https://arxiv.org/abs/2210.12624

    Update rule (the paper's Algorithm 1): each task keeps a tracked gradient
    ``y_i <- y_i - beta_k (y_i - g_i)``; the weights take one projected step of the
    min-norm problem, ``λ <- Π_simplex(λ - gamma_k (Y Yᵀ + rho I) λ)``; ``d = Yᵀλ``.
    ``beta_k = beta / k^beta_sigma``, ``gamma_k = gamma / k^gamma_sigma`` (k counts
    the task's own updates for ``y_i``, the steps for ``λ``). Needs the per-task
    Jacobian; the tracked gradients (tasks x P) and weights are keyed by task id
    (an absent task keeps them) and checkpointed.

    Output scale: a convex combination of the tracked gradients (mean-like).

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        beta: tracking rate of the task gradients.
        beta_sigma: decay exponent of the tracking rate.
        gamma: step size of the weights.
        gamma_sigma: decay exponent of the weight step size.
        rho: ridge added to the tracked gradients' Gramian.
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    config_name = "moco"  # configs/mtl_algorithm/moco.yaml, mtl_algorithm=moco

    hyperparameters = ("beta", "beta_sigma", "gamma", "gamma_sigma", "rho")

    def __init__(self, backbone: nn.Module, heads: MTLHeads, beta: float = 0.5, beta_sigma: float = 0.5,
                 gamma: float = 0.1, gamma_sigma: float = 0.5, rho: float = 0.0,
                 gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads, aggregators.MoCo(beta, beta_sigma, gamma, gamma_sigma, rho), gradient_path)
        self.beta, self.beta_sigma = float(beta), float(beta_sigma)
        self.gamma, self.gamma_sigma, self.rho = float(gamma), float(gamma_sigma), float(rho)
