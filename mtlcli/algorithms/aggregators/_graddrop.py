"""GradDrop: keep, per coordinate, the gradients of one randomly chosen sign."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mtlcli.algorithms.aggregators._base import Aggregator, check_finite_rows, check_matrix


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
        check_finite_rows(G, task_ids)
        magnitude = G.abs().sum(dim=0)
        # Where every entry is 0 the purity is 1/2; the mask then keeps nothing, and nothing is lost.
        safe = torch.where(magnitude > 0, magnitude, torch.ones_like(magnitude))
        purity = torch.where(magnitude > 0, 0.5 * (1 + G.sum(dim=0) / safe), torch.full_like(magnitude, 0.5))
        if generator is None:
            generator = self._own_generator(G.device)
        draw = torch.rand(G.shape[1], generator=generator, device=G.device, dtype=G.dtype)
        keep_positive = purity > draw
        mask = torch.where(keep_positive, G > 0, G < 0).to(G.dtype)
        return (G * (self.leak + (1 - self.leak) * mask)).sum(dim=0)

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
