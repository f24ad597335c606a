"""Algorithms that let a test reach a known training step: pause there (so a signal lands
mid-epoch at a chosen step) or make one task's loss non-finite there.

They subclass shipped algorithms and change nothing in their math, so a run with a probe
and a run without one train identically. Tests name them in configs as
``probe_algorithms.<Class>`` with this folder on the Python path.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn

from mtlcli.algorithms import DWA, RLW, JointLearning
from mtlcli.heads import MTLHeads

PAUSE_AT = "MTLCLI_PROBE_PAUSE_AT"     # training step (1-based, counted in this process) to pause before
PAUSE_DIR = "MTLCLI_PROBE_PAUSE_DIR"   # folder for the handshake files below
PAUSED_FILE = "paused"                 # written by the run when it reaches the step
RELEASE_FILE = "release"               # written by the test to let the run continue


class _PauseBeforeStep:
    """With ``MTLCLI_PROBE_PAUSE_AT=N`` set, write ``paused`` before the N-th training step
    and wait (at most two minutes) for ``release``; without it, do nothing."""

    _probe_steps = 0

    def training_step(self, x, y, task_id, *args, **kwargs):
        self._probe_steps += 1
        pause_at = os.environ.get(PAUSE_AT)
        if pause_at and self._probe_steps == int(pause_at):
            folder = Path(os.environ[PAUSE_DIR])
            (folder / PAUSED_FILE).write_text(str(self._probe_steps))
            deadline = time.monotonic() + 120
            while not (folder / RELEASE_FILE).exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return super().training_step(x, y, task_id, *args, **kwargs)


class PausingDWA(_PauseBeforeStep, DWA):
    """DWA (epoch-level loss history in its state) with a pause hook."""


class PausingRLW(_PauseBeforeStep, RLW):
    """RLW (a random generator advanced every step in its state) with a pause hook."""


class NonFiniteAtStep(JointLearning):
    """Joint learning whose task ``nan_task`` gets a NaN loss at training step ``nan_step``.

    Args:
        backbone: shared feature extractor (injected by the trainer).
        heads: one head per task (injected by the trainer).
        nan_task: the task whose loss becomes NaN.
        nan_step: the training step (1-based, counted in this process) at which it happens.
    """

    def __init__(self, backbone: nn.Module, heads: MTLHeads, nan_task: int = 1, nan_step: int = 1):
        super().__init__(backbone, heads)
        self.nan_task = int(nan_task)
        self.nan_step = int(nan_step)
        self._probe_steps = 0

    def task_losses(self, outputs, y, *args, **kwargs):
        losses = super().task_losses(outputs, y, *args, **kwargs)
        if self.training:
            self._probe_steps += 1
            if self._probe_steps == self.nan_step and self.nan_task in losses:
                losses[self.nan_task] = losses[self.nan_task] * torch.tensor(float("nan"))
        return losses
