"""The one contract every MTL algorithm follows.

The trainer builds ``backbone`` and ``heads`` and injects them; an algorithm
decides only how a mixed batch's per-task losses become gradients
(:meth:`MTLAlgorithm.backward`). The training loop calls
:meth:`MTLAlgorithm.training_step` at exactly one place and then clips and
steps the optimizer itself.

Non-finite policy (the same for every method): a non-finite task loss raises
:class:`NonFiniteLossError` before any gradient is formed, so the optimizer never
steps on NaN/inf; the trainer stops the run and keeps the last good checkpoint.

State (loss history, moving averages, learned weights) lives in registered
buffers/parameters or in ``get_extra_state`` (tensors and plain containers only),
so it is part of ``state_dict`` and of the checkpoint, loadable with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import nn

from mtlcli.heads import MTLHeads, TaskLogits

if TYPE_CHECKING:
    from mtlcli.engine.distributed import DistributedStep


class NonFiniteLossError(ArithmeticError):
    """A task's training loss is NaN or infinite."""

    def __init__(self, task_id: int, value: float):
        self.task_id = task_id
        self.value = value
        super().__init__(f"task {task_id} has a non-finite loss ({value})")


@dataclass
class StepOutput:
    """What one training step reports back to the loop (all detached)."""

    loss: torch.Tensor                     # scalar the algorithm optimised (for logging)
    task_losses: dict[int, torch.Tensor]   # task id -> mean cross-entropy on its rows
    task_outputs: dict[int, TaskLogits]    # task id -> rows and logits (for train metrics)


class MTLAlgorithm(nn.Module):
    """Base class: shared ``backbone`` + one head per task.

    Subclasses implement :meth:`backward`. Their other constructor arguments are
    their hyperparameters; ``backbone`` and ``heads`` are injected by the trainer
    and never appear in a config.

    Args:
        backbone: shared feature extractor with an ``output_dim`` attribute.
        heads: one classification head per task.
    """

    #: Data-parallel training: False lets DistributedDataParallel average ``.grad``
    #: after :meth:`backward` (methods whose update is the gradient of one scalar);
    #: True when :meth:`backward` averages what it needs over processes itself
    #: (gradient methods average each task's gradient before aggregating).
    averages_own_gradients: ClassVar[bool] = False

    def __init__(self, backbone: nn.Module, heads: MTLHeads):
        super().__init__()
        self.backbone = backbone
        self.heads = heads
        # the running step's link to the global batch (data-parallel runs), set by
        # training_step for the duration of backward(); None on one process
        self.distributed_step: Optional[DistributedStep] = None

    # -- forward -----------------------------------------------------------
    def forward(self, x: torch.Tensor, task_id: torch.Tensor) -> dict[int, TaskLogits]:
        return self.heads(self.backbone(x), task_id)

    @staticmethod
    def task_losses(outputs: dict[int, TaskLogits], y: torch.Tensor,
                    step: Optional[DistributedStep] = None) -> dict[int, torch.Tensor]:
        """Mean cross-entropy of each task present, over that task's rows.

        In a data-parallel ``step``: each task's mean over the rows of the global batch
        (all processes' pieces), for every task present in it (see
        ``DistributedStep.global_task_means``).
        """
        if step is None:
            return {t: F.cross_entropy(o.logits, y.index_select(0, o.index)) for t, o in outputs.items()}
        sums = {t: F.cross_entropy(o.logits, y.index_select(0, o.index), reduction="sum") for t, o in outputs.items()}
        return step.global_task_means(sums, {t: o.index.numel() for t, o in outputs.items()})

    @staticmethod
    def check_finite(task_losses: dict[int, torch.Tensor]) -> None:
        """Raise :class:`NonFiniteLossError` naming the first task whose loss is NaN or inf."""
        values = torch.stack([loss.detach() for loss in task_losses.values()])
        # one host sync per step: a NaN or inf anywhere makes the sum non-finite (a sum
        # that overflows although every loss is finite only costs the look below)
        if math.isfinite(values.sum().item()):
            return
        for t, v in zip(task_losses, values.tolist()):
            if not math.isfinite(v):
                raise NonFiniteLossError(t, v)

    # -- training ----------------------------------------------------------
    def training_step(self, x: torch.Tensor, y: torch.Tensor, task_id: torch.Tensor,
                      step: Optional[DistributedStep] = None) -> StepOutput:
        """Forward a mixed batch, form per-task losses, and fill ``.grad`` of every parameter.

        ``step`` (data-parallel runs): this process holds one piece of the global batch;
        the forward goes through DistributedDataParallel and the losses are global means.
        """
        outputs = (self if step is None else step.forward)(x, task_id)
        losses = self.task_losses(outputs, y, step)
        self.check_finite(losses)
        self.distributed_step = step
        try:
            loss = self.backward(losses)
        finally:
            self.distributed_step = None
        return StepOutput(
            loss=loss.detach(),
            task_losses={t: v.detach() for t, v in losses.items()},
            task_outputs={t: TaskLogits(o.index, o.logits.detach()) for t, o in outputs.items()},
        )

    def backward(self, task_losses: dict[int, torch.Tensor]) -> torch.Tensor:
        """Turn the per-task losses of the tasks present into gradients; return the
        scalar that represents the step (for logging). Must free the graph."""
        raise NotImplementedError

    def on_train_epoch_end(self, epoch: int) -> None:
        """Called once after each training epoch (for epoch-level state such as DWA's)."""

    # -- helpers -----------------------------------------------------------
    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters every task uses (the backbone's), in a fixed order."""
        return [p for p in self.backbone.parameters() if p.requires_grad]

    def task_specific_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.heads.parameters() if p.requires_grad]
