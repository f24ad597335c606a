"""GradDrop: keep, per coordinate, the gradients of one randomly chosen sign."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mtlcli.algorithms.aggregators._base import (
    Aggregator,
    NonFiniteGradientError,
    check_matrix,
    column_blocks,
    raise_non_finite_rows,
)


class GradDrop(Aggregator):
    """Gradient Sign Dropout.

    Paper: "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient
    Sign Dropout", Zhao Chen, Jiquan Ngiam, Yanping Huang, Thang Luong, Henrik
    Kretzschmar, Yuning Chai, Dragomir Anguelov, NeurIPS 2020,
    https://arxiv.org/abs/2010.06808.

    Rule: for each coordinate k, the positive sign purity
    ``P_k = (1 + Σ_i g_ik / Σ_i |g_ik|) / 2`` (1/2 where every g_ik is 0) and a
    uniform draw ``U_k``; task i's entry is kept if ``P_k > U_k`` and
    ``g_ik > 0``, or ``P_k < U_k`` and ``g_ik < 0``. With leak ``l``, task i
    contributes ``l g_ik + (1 - l) M_ik g_ik``; ``d = Σ_i`` of that. It needs
    the coordinates (``gramian_only = False``); the engine may pass gradients
    with respect to the shared representation, as the paper does.

    Computed in column blocks (the two signed sums per coordinate, then the
    choice between them), so no T x P temporary is made; autograd does not
    track the direction.

    Output scale: sum of the (masked) task gradients; with all signs agreeing
    nothing is dropped and ``d`` is the sum.

    Args:
        leak: fraction of each gradient that bypasses the mask, in [0, 1]
            (0, the paper's default; 1 gives the plain sum).
        seed: seed of the generator of the draws ``U`` (its state is
            checkpointed). A ``generator`` passed to the call is used instead.
    """

    gramian_only = False
    _hyperparameters = ("leak", "seed")

    def __init__(self, leak: float = 0.0, seed: int = 0):
        if not 0 <= leak <= 1:
            raise ValueError(f"GradDrop leak must be in [0, 1], got {leak}")
        self.leak = float(leak)
        self.seed = int(seed)
        self._generator: torch.Generator | None = None
        self._pending_state: tuple[str, Tensor] | None = None  # (device type, generator state)

    def __call__(
        self, G: Tensor, task_ids: Sequence[int] | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        check_matrix(G)
        if generator is None:
            generator = self._own_generator(G.device)
        before = generator.get_state()
        G = G.detach()
        T, P = G.shape
        draw = torch.rand(P, generator=generator, device=G.device, dtype=G.dtype)
        direction = G.new_empty(P)
        blocks = column_blocks(G)
        width = blocks[0][1] if blocks else 0
        part = G.new_empty(T, width)
        positive, negative, magnitude = G.new_empty(width), G.new_empty(width), G.new_empty(width)
        mask = G.new_empty(width)
        checksum = G.new_zeros(())
        for start, stop in blocks:
            block, n = G[:, start:stop], stop - start
            pos, neg, mag, out = positive[:n], negative[:n], magnitude[:n], direction[start:stop]
            # Σ_i max(g_ik, 0) and Σ_i min(g_ik, 0): the masked sum is one of the two
            torch.sum(torch.clamp(block, min=0, out=part[:, :n]), dim=0, out=pos)
            torch.sum(torch.clamp(block, max=0, out=part[:, :n]), dim=0, out=neg)
            torch.sub(pos, neg, out=mag)  # Σ_i |g_ik|; a NaN or inf in G survives into it
            checksum += mag.sum()
            # P_k = (1 + Σ g / Σ |g|) / 2 = Σ max(g, 0) / Σ |g|, so P_k > U_k reads
            # pos > U_k mag (mag > 0). Where every entry is 0, pos = neg = 0: either is right.
            # (A float 0/1 mask and two products select exactly, one term being 0; a
            # boolean mask and torch.where cost five times more here.)
            chosen = torch.gt(pos, torch.mul(draw[start:stop], mag, out=out), out=mask[:n])
            torch.mul(pos, chosen, out=out).addcmul_(neg, chosen.sub_(1), value=-1)
            if self.leak:
                out.mul_(1 - self.leak).add_(pos + neg, alpha=self.leak)
        if not bool(torch.isfinite(checksum)):
            try:
                raise_non_finite_rows(G, task_ids)
            except NonFiniteGradientError:
                generator.set_state(before)  # a failed call leaves the random stream where it was
                raise
        return direction

    def _own_generator(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device.type != device.type:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
            if self._pending_state is not None:
                saved_on, state = self._pending_state
                if saved_on != device.type:
                    raise ValueError(
                        f"GradDrop's random stream was saved on {saved_on} and cannot continue on {device.type}"
                    )
                self._generator.set_state(state)
                self._pending_state = None
        return self._generator

    def state_dict(self) -> dict[str, Any]:
        if self._generator is not None:
            return {"generator": self._generator.get_state(), "generator_device": self._generator.device.type}
        if self._pending_state is not None:
            return {"generator": self._pending_state[1], "generator_device": self._pending_state[0]}
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._generator = None
        self._pending_state = None
        if "generator" in state:
            # Applied when the generator is next used, on the device of the gradients.
            self._pending_state = (str(state.get("generator_device", "cpu")), state["generator"])
