"""Base class of the gradient-manipulation methods.

A gradient method turns the per-task gradients of the shared parameters into one
update. The per-task gradients (or only their Gramian) come from
:class:`~mtlcli.algorithms.jacobian.TaskGradientEngine`, the aggregation from a pure
aggregator (``mtlcli.algorithms.aggregators``); this class wires the two into
:meth:`MTLAlgorithm.backward` so that every method shares one engine, one
non-finite policy and one checkpoint format.

Non-finite policy (extends the base class's): a non-finite task loss raises
:class:`NonFiniteLossError` (base class, before any backward); a task whose
gradient holds NaN/inf raises :class:`NonFiniteGradientError` before the
aggregator runs; an aggregator that turns finite gradients into a non-finite
update raises it too. In every case no ``.grad`` has been written, so the
optimizer never steps on NaN/inf. ``NonFiniteGradientError`` subclasses
``NonFiniteLossError``, so the trainer's one handler (stop, keep the last good
checkpoint) covers both.

Heads are not aggregated: head t receives ``∇L_t`` (see ``jacobian.py``), times
``Update.head_weights[t]`` when a method sets them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor, nn

from mtlcli.algorithms.aggregators._base import NonFiniteGradientError as AggregatorNonFinite
from mtlcli.algorithms.base import MTLAlgorithm, NonFiniteLossError
from mtlcli.algorithms.jacobian import GRADIENT_PATHS, GradientPath, TaskGradientEngine, TaskGradients
from mtlcli.heads import MTLHeads


class NonFiniteGradientError(NonFiniteLossError):
    """A task's gradient (or the aggregated update) holds NaN or inf."""

    def __init__(self, task_id: int | None, value: float = float("nan")):
        self.task_id = task_id
        self.value = value
        what = f"task {task_id} has a non-finite gradient" if task_id is not None else \
            "the aggregated update is not finite although every task gradient is"
        ArithmeticError.__init__(self, what)


@dataclass
class Update:
    """What a method decides for one step: task weights (``d = Σ_t w_t g_t``) or
    a direction ``d`` in shared-parameter coordinates; optional per-task head scales."""

    weights: Tensor | None = None
    direction: Tensor | None = None
    head_weights: Tensor | None = None


class GradientMethod(MTLAlgorithm):
    """Shared machinery of the methods that act on per-task gradients.

    Subclasses pass an aggregator (``gramian_only`` aggregators get the T x T
    Gramian, the others the T x P Jacobian) or override :meth:`aggregate`.
    Their state is the aggregator's ``state_dict`` plus :meth:`method_state`,
    saved through ``get_extra_state`` (tensors and plain containers only).

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        aggregator: the pure rule ``G -> d`` (or ``Gramian -> weights``).
        gradient_path: how per-task gradients are computed: ``auto`` (fast exact path
            when the backbone allows, else batched, else per-task loop), ``fast``
            (the fast path or an error), ``batched`` or ``loop`` (force the general path).
    """

    # data-parallel runs: the engine averages each task's gradient over processes
    # before aggregation, so every process aggregates the same global Jacobian
    averages_own_gradients = True

    #: constructor arguments (besides backbone, heads, gradient_path) that ``repr`` shows
    hyperparameters: ClassVar[tuple[str, ...]] = ()

    def __init__(self, backbone: nn.Module, heads: MTLHeads, aggregator: Any = None,
                 gradient_path: GradientPath = "auto"):
        super().__init__(backbone, heads)
        if gradient_path not in GRADIENT_PATHS:
            raise ValueError(f"gradient_path must be one of {list(GRADIENT_PATHS)}, got {gradient_path!r}")
        # a plain attribute even if the aggregator is a Module: its state travels
        # through get_extra_state, not as parameters the optimizer would see
        object.__setattr__(self, "aggregator", aggregator)
        self.gradient_path = gradient_path
        self.engine = TaskGradientEngine(backbone, heads, gradient_path)
        self.last_gradient_path: str | None = None  # which engine path the last step took

    # -- what the engine must produce -----------------------------------------
    @property
    def needs_jacobian(self) -> bool:
        """True when the method needs coordinates (not only the Gramian)."""
        return self.aggregator is not None and not getattr(self.aggregator, "gramian_only", True)

    def gramian_params(self) -> Sequence[Tensor] | None:
        """Shared parameters the Gramian is taken over (None: all of them)."""
        return None

    # -- the step ---------------------------------------------------------------
    def forward(self, x: Tensor, task_id: Tensor):
        with self.engine.recording(task_id):
            features = self.backbone(x)
        return self.heads(features, task_id)

    def backward(self, task_losses: dict[int, Tensor]) -> Tensor:
        task_ids = list(task_losses)
        losses = torch.stack([task_losses[t] for t in task_ids])
        grads = self.task_gradients(task_losses)
        self.last_gradient_path = grads.path
        bad = grads.nonfinite_task()
        if bad is not None:
            raise NonFiniteGradientError(bad)
        try:
            update = self.aggregate(grads, losses.detach(), task_ids)
        except AggregatorNonFinite as err:  # one error type for the trainer to handle
            raise NonFiniteGradientError(err.task_ids[0] if err.task_ids else None) from err
        self._check_update(update)
        if update.weights is not None:
            grads.apply_weights(update.weights, update.head_weights)
            return (update.weights.detach().to(losses.dtype) * losses.detach()).sum()
        grads.apply_direction(update.direction, update.head_weights)
        return losses.detach().mean()

    def task_gradients(self, task_losses: dict[int, Tensor]) -> TaskGradients:
        """This step's per-task gradients from the engine (consumes the graph)."""
        return self.engine.compute(task_losses, "jacobian" if self.needs_jacobian else "gramian",
                                   self.gramian_params(), distributed=self.distributed_step)

    def aggregate(self, grads: TaskGradients, losses: Tensor, task_ids: list[int]) -> Update:
        """The method's rule: per-task gradients (+ detached losses) -> update."""
        if self.needs_jacobian:
            return Update(direction=self.aggregator(grads.jacobian, task_ids))
        return Update(weights=self.aggregator.weights(grads.gramian, task_ids))

    @staticmethod
    def _check_update(update: Update) -> None:
        if (update.weights is None) == (update.direction is None):
            raise TypeError("an Update sets exactly one of weights and direction")
        for t in (update.weights, update.direction, update.head_weights):
            # a sum carries NaN and inf through at a tenth of the cost of an isfinite mask
            if t is not None and not bool(torch.isfinite(t.sum())):
                raise NonFiniteGradientError(None)

    # -- helpers for subclasses -------------------------------------------------
    @property
    def num_tasks(self) -> int:
        """All tasks the heads know (per-task state is sized by this)."""
        return len(self.heads.task_ids)

    def slots(self, task_ids: Sequence[int], device: torch.device | None = None) -> Tensor:
        """Positions of ``task_ids`` in ``heads.task_ids``: the index of a task's state."""
        position = {t: k for k, t in enumerate(self.heads.task_ids)}
        return torch.tensor([position[int(t)] for t in task_ids], dtype=torch.long, device=device)

    def num_shared_parameters(self) -> int:
        """P, the number of shared coordinates (columns of the Jacobian)."""
        return sum(p.numel() for p in self.shared_parameters())

    def last_shared_layer_parameters(self) -> list[Tensor]:
        """Parameters of the last backbone module (registration order) that owns a trainable
        weight matrix or kernel (a parameter with two or more dimensions): "the last shared
        layer" of GradNorm-style methods. Normalisation layers after it (BatchNorm's affine
        vectors) do not count as a layer of weights."""
        last: list[Tensor] = []
        for m in self.backbone.modules():
            own = [p for p in m.parameters(recurse=False) if p.requires_grad]
            if any(p.dim() >= 2 for p in own):
                last = own
        if not last:
            raise ValueError("the backbone has no trainable weight matrix or kernel")
        return last

    # -- state --------------------------------------------------------------------
    def method_state(self) -> dict:
        """Extra state of a subclass (tensors and plain containers)."""
        return {}

    def load_method_state(self, state: dict) -> None:
        """Restore :meth:`method_state`."""

    def get_extra_state(self) -> dict:
        agg = self.aggregator.state_dict() if self.aggregator is not None and hasattr(self.aggregator, "state_dict") else {}
        return {"aggregator": agg, "method": self.method_state()}

    def set_extra_state(self, state: dict) -> None:
        if self.aggregator is not None and hasattr(self.aggregator, "load_state_dict"):
            self.aggregator.load_state_dict(state.get("aggregator", {}))
        self.load_method_state(state.get("method", {}))

    def extra_repr(self) -> str:
        """The constructor arguments named in ``hyperparameters``, then ``gradient_path``."""
        shown = [f"{name}={getattr(self, name)!r}" for name in self.hyperparameters]
        if not self.hyperparameters and self.aggregator is not None:
            shown.append(f"aggregator={self.aggregator!r}")
        return ", ".join(shown + [f"gradient_path={self.gradient_path!r}"])
