"""GradDrop: keep, per coordinate, only the gradient sign most tasks agree on."""

from __future__ import annotations

from torch import nn

from mtlcli.algorithms import aggregators
from mtlcli.algorithms.gradient_method import GradientMethod
from mtlcli.algorithms.jacobian import GradientPath
from mtlcli.heads import MTLHeads


class GradDrop(GradientMethod):
    """GradDrop, gradient sign dropout, on the shared parameters.

    Paper: "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign
    Dropout", Zhao Chen, Jiquan Ngiam, Yanping Huang, Thang Luong, Henrik
    Kretzschmar, Yuning Chai, Dragomir Anguelov, NeurIPS 2020.
    https://arxiv.org/abs/2010.06808

    Update rule: per coordinate k, the positive-sign purity
    ``P_k = (1 + Σ_i g_ik / Σ_i |g_ik|) / 2`` and a uniform draw ``U_k``; task i's
    entry survives if ``P_k > U_k`` and ``g_ik > 0``, or ``P_k < U_k`` and
    ``g_ik < 0``; ``d = Σ_i (leak g_ik + (1 - leak) mask_ik g_ik)``.

    Why the shared parameters and not the representation (where the paper applies
    it): in a mixed batch the tasks' gradients with respect to the backbone output
    have disjoint rows, so every coordinate has one task's sign only, ``P_k`` is 0
    or 1, nothing is ever dropped and GradDrop would be the plain sum. On the
    shared parameters the tasks' gradients overlap and the signs can disagree.
    Needs the per-task Jacobian (coordinates).

    Output scale: sum of the masked task gradients (the sum when all signs agree).

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        leak: fraction of each gradient that bypasses the mask, in [0, 1] (0 in the paper).
        seed: seed of the draws ``U`` (the generator state is checkpointed).
        gradient_path: per-task gradient path: ``auto``, ``fast``, ``batched`` or ``loop``.
    """

    config_name = "graddrop"  # configs/mtl_algorithm/graddrop.yaml, mtl_algorithm=graddrop

    hyperparameters = ("leak", "seed")

    def __init__(self, backbone: nn.Module, heads: MTLHeads, leak: float = 0.0, seed: int = 0,
                 gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads, aggregators.GradDrop(leak, seed), gradient_path)
        self.leak, self.seed = float(leak), int(seed)
