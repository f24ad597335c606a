"""The training loop: plain PyTorch, top to bottom, no callbacks.

batch -> ``model.training_step`` (the one place an algorithm plugs in) -> clip ->
optimizer step -> scheduler -> per-epoch validation -> checkpoint; finally test.

The same loop runs data-parallel when the process group is up (see
:mod:`mtlcli.engine.distributed`): the model runs under DistributedDataParallel,
each step hands the algorithm a :class:`DistributedStep`, evaluation runs on one
shard per process with torchmetrics' sync, and only rank 0 writes files.
"""

from __future__ import annotations

import signal
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import torch

from mtlcli.algorithms.base import MTLAlgorithm, NonFiniteLossError
from mtlcli.engine import distributed, outputs
from mtlcli.engine.checkpoint import capture_rng_state, restore_rng_state, save_checkpoint
from mtlcli.engine.evaluation import evaluate
from mtlcli.engine.metrics import TaskResult, average
from mtlcli.engine.progress import Progress
from mtlcli.errors import EXIT_INTERRUPTED, ConfigError, MtlcliError


class TrainingInterrupted(MtlcliError):
    """Ctrl-C or SIGTERM (what batch schedulers send before killing a job): the state was
    saved at a step boundary and the run can be resumed. Exit code 128 + the signal
    number, as a shell reports a process ended by it (130 for Ctrl-C, 143 for SIGTERM)."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.exit_code = 128 + int(signum)


@dataclass
class TaskData:
    """Task-labelled samples of one split, already on the training device."""

    x: torch.Tensor
    y: torch.Tensor
    task_id: torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass
class RunData:
    """What the loop trains and evaluates on."""

    train: TaskData
    val: Optional[TaskData]   # validation rows of the training tasks (None when there are none)
    test: TaskData            # test rows of the evaluation tasks
    num_classes: dict[int, int]
    batch_size: int
    sampler: object           # mtlcli.data.MixedBatchSampler over ``train``


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cpu``; ``cuda`` or ``cuda:N``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise MtlcliError(f"trainer.device: unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise MtlcliError("trainer.device is cuda but no CUDA device is available (use trainer.device=cpu or auto)")
    if resolved.type not in ("cpu", "cuda"):
        raise MtlcliError(f"trainer.device: unsupported device {device!r} (use auto, cpu, cuda or cuda:N)")
    return resolved


def type_name(obj) -> str | None:
    """``module.Class`` of an object (None for None): what a checkpoint records of its optimizer."""
    return None if obj is None else f"{type(obj).__module__}.{type(obj).__qualname__}"


class _TrainAccumulator:
    """Per-task sums of loss x samples, correct predictions and samples: per-sample means.

    It runs on every training step, so a step only records its (detached) outputs; the
    sums are formed every ``FLUSH_EVERY`` steps and whenever :attr:`sums` is read. A dozen
    tiny tensor ops run back to back then cost a fraction of what they cost interleaved
    with each step's backward and optimizer step; no host syncs; the arithmetic, and its
    order, is that of summing step by step (so resumed runs match bit for bit).
    """

    FLUSH_EVERY = 32  # steps held at most (their detached logits and targets)

    def __init__(self, task_ids: list[int], device: torch.device):
        self.task_ids = list(task_ids)
        self._row = {t: i for i, t in enumerate(self.task_ids)}
        self._rows = {}  # tuple of task ids present -> index tensor of their rows (cached)
        self._sums = torch.zeros(len(self.task_ids), 3, dtype=torch.float64, device=device)
        self._pending: list[tuple] = []

    @property
    def sums(self) -> torch.Tensor:
        """(tasks, 3) float64: loss x samples, correct, samples; every recorded step included."""
        self._flush()
        return self._sums

    def update(self, step, y: torch.Tensor) -> None:
        self._pending.append((step.task_outputs, step.task_losses, y))
        if len(self._pending) >= self.FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        sums = self._sums
        for task_outputs, task_losses, y in self._pending:
            present = tuple(task_outputs)
            rows = self._rows.get(present)
            if rows is None:
                rows = self._rows[present] = torch.tensor([self._row[t] for t in present], device=sums.device)
            outs = task_outputs.values()
            counts = torch.tensor([o.index.numel() for o in outs], dtype=torch.float64).to(sums.device, non_blocking=True)
            correct = torch.stack([(o.logits.argmax(1) == y.index_select(0, o.index)).sum() for o in outs])
            losses = torch.stack([task_losses[t] for t in present]).double()
            sums.index_add_(0, rows, torch.stack([losses * counts, correct.double(), counts], dim=1))
        self._pending.clear()

    def results(self) -> list[TaskResult]:
        sums = self.sums.cpu().tolist()
        return [TaskResult(t, s[0] / s[2], s[1] / s[2], int(s[2])) for t, s in zip(self.task_ids, sums) if s[2] > 0]


class Trainer:
    """Runs the multi-task training loop on one device, or on several processes
    (data-parallel, one device each) when started by torchrun or with ``devices > 1``.

    Args:
        max_epochs: number of passes over the mixed training data.
        device: ``auto`` (cuda if available, else cpu), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``32`` (float32) or ``bf16-mixed`` (autocast to bfloat16 for the forward pass).
        gradient_clip_val: clip the global gradient norm to this value; null disables clipping.
        lr_scheduler_interval: step the lr scheduler every ``epoch`` or every ``step`` (ReduceLROnPlateau always steps per epoch on the mean validation loss).
        checkpoint_every_n_epochs: write ``checkpoints/last.pt`` and the epoch metrics CSVs every N epochs (and always at the end).
        devices: processes on this machine, one device each (data-parallel: every global batch
            is split over them); more than 1 relaunches the command under torchrun; under
            torchrun, 1 lets torchrun decide.
        sync_batchnorm: with several CUDA processes, normalise BatchNorm layers with the
            global batch's statistics (SyncBatchNorm) instead of each process's piece;
            not available for gradient-manipulation methods.
    """

    def __init__(
        self,
        max_epochs: int = 10,
        device: str = "auto",
        precision: Literal["32", "bf16-mixed"] = "32",
        gradient_clip_val: Optional[float] = None,
        lr_scheduler_interval: Literal["epoch", "step"] = "epoch",
        checkpoint_every_n_epochs: int = 1,
        devices: int = 1,
        sync_batchnorm: bool = False,
    ):
        if max_epochs < 0:
            raise ConfigError(f"max_epochs must be >= 0, got {max_epochs}")
        if str(precision) not in ("32", "bf16-mixed"):
            raise ConfigError(f"precision must be '32' or 'bf16-mixed', got {precision!r}")
        if gradient_clip_val is not None and gradient_clip_val <= 0:
            raise ConfigError(f"gradient_clip_val must be positive or null, got {gradient_clip_val}")
        if lr_scheduler_interval not in ("epoch", "step"):
            raise ConfigError(f"lr_scheduler_interval must be 'epoch' or 'step', got {lr_scheduler_interval!r}")
        if checkpoint_every_n_epochs < 1:
            raise ConfigError(f"checkpoint_every_n_epochs must be >= 1, got {checkpoint_every_n_epochs}")
        if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
            raise ConfigError(f"devices must be an integer >= 1, got {devices!r}")
        self.max_epochs = int(max_epochs)
        self.device_name = device
        self.precision = str(precision)
        self.gradient_clip_val = gradient_clip_val
        self.lr_scheduler_interval = lr_scheduler_interval
        self.checkpoint_every_n_epochs = int(checkpoint_every_n_epochs)
        self.devices = int(devices)
        self.sync_batchnorm = bool(sync_batchnorm)

    @property
    def device(self) -> torch.device:
        """This process's device (under torchrun with CUDA: the GPU of its local rank)."""
        return distributed.rank_device(resolve_device(self.device_name), distributed.env_world())

    def _wrap(self, model: MTLAlgorithm, device: torch.device, world: distributed.World) -> torch.nn.Module:
        """The module whose forward the training steps call (DDP when distributed)."""
        if not world.distributed:
            return model
        if self.sync_batchnorm and device.type != "cuda":
            raise MtlcliError("trainer.sync_batchnorm needs CUDA devices (SyncBatchNorm has no CPU implementation); "
                              "set it to false to keep per-process BatchNorm statistics")
        if self.sync_batchnorm and model.averages_own_gradients:
            raise MtlcliError("trainer.sync_batchnorm does not work with gradient-manipulation methods "
                              "(their per-task backward passes cannot synchronise BatchNorm); set it to false")
        return distributed.wrap_model(model, device, self.sync_batchnorm)

    def _autocast(self, device: torch.device):
        if self.precision == "bf16-mixed":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return nullcontext()

    def fit(
        self,
        model: MTLAlgorithm,
        optimizer: torch.optim.Optimizer,
        scheduler,
        data: RunData,
        output_dir: Path,
        progress: Progress,
        state: Optional[dict] = None,
    ) -> list[TaskResult]:
        """Train (from scratch, or from a checkpoint ``state``), then test; returns test results."""
        output_dir = Path(output_dir)
        checkpoint_path = output_dir / "checkpoints" / "last.pt"
        device = data.train.x.device
        world = distributed.current()
        network = self._wrap(model, device, world)
        plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if plateau and data.val is None:
            raise MtlcliError("ReduceLROnPlateau watches the validation loss, but there is no validation data "
                              "(set validation_percentage > 0 or choose another lr_scheduler)")

        epoch, batch_start, global_step = 0, 0, 0
        train_rows: list[dict] = []
        val_rows: list[dict] = []
        accumulator = _TrainAccumulator(sorted({int(t) for t in data.num_classes}), device)
        if state is not None:
            epoch, batch_start, global_step = state["epoch"], state["batch"], state["global_step"]
            train_rows, val_rows = list(state["train_rows"]), list(state["val_rows"])
            if world.is_main:  # the saved sums are global: counted once, on rank 0
                accumulator.sums.copy_(state["train_sums"])

        def checkpoint(next_epoch: int, next_batch: int) -> None:
            # collectives on every rank first; then rank 0 writes (a write error stops every rank)
            distributed.average_buffers(model.backbone)
            train_sums = distributed.all_reduce_sum_(accumulator.sums.clone()).cpu()
            rng = capture_rng_state()
            rng_per_rank = distributed.gather_objects(rng, device) if world.distributed else None

            def write() -> None:
                payload = {
                    "epoch": next_epoch, "batch": next_batch, "global_step": global_step,
                    "max_epochs": self.max_epochs, "world_size": world.world_size,
                    # resuming checks these: another optimizer would accept foreign state silently
                    "optimizer_type": type_name(optimizer), "scheduler_type": type_name(scheduler),
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else {},
                    "rng": rng,
                    "train_sums": train_sums,
                    "train_rows": train_rows, "val_rows": val_rows,
                }
                if rng_per_rank is not None:  # each rank resumes its own random streams (dropout)
                    payload["rng_per_rank"] = rng_per_rank
                save_checkpoint(checkpoint_path, payload)

            stop.writing = True  # a second Ctrl-C now must not tear the file being written
            try:
                distributed.on_main(write, device)
            finally:
                stop.writing = False

        def run_evaluation(split: TaskData) -> list[TaskResult]:
            distributed.average_buffers(model.backbone)
            start, end = distributed.shard(len(split), world)
            return evaluate(model, split.x[start:end], split.y[start:end], split.task_id[start:end],
                            data.num_classes, data.batch_size)

        stop = _StopFlag()
        with stop:
            for epoch in progress.epochs(epoch, self.max_epochs):
                network.train()
                num_batches = len(data.sampler)
                batches = data.sampler.batches(epoch, start=batch_start)
                for batch_index, index in enumerate(progress.batches(batches, num_batches, batch_start, epoch), start=batch_start):
                    x = data.train.x.index_select(0, index)
                    y = data.train.y.index_select(0, index)
                    task_id = data.train.task_id.index_select(0, index)
                    optimizer.zero_grad(set_to_none=True)
                    link = None
                    if world.distributed:
                        link = distributed.DistributedStep(network, model.heads.task_ids, world.world_size,
                                                           stop.requested)
                    try:
                        with self._autocast(device), self._ddp_sync(network, model, world):
                            if link is None:
                                step = model.training_step(x, y, task_id)
                            else:
                                step = model.training_step(x, y, task_id, link)
                    except NonFiniteLossError as err:
                        kept = (f"the last good checkpoint is kept in {checkpoint_path}" if checkpoint_path.exists()
                                else "no checkpoint was written yet")
                        raise MtlcliError(
                            f"training stopped: task {err.task_id} has a non-finite loss ({err.value}) at epoch "
                            f"{epoch + 1}, step {batch_index + 1} (global step {global_step + 1}); {kept} "
                            f"(lower the learning rate or set trainer.gradient_clip_val)"
                        ) from err
                    if self.gradient_clip_val is not None:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), self.gradient_clip_val)
                    optimizer.step()
                    if scheduler is not None and not plateau and self.lr_scheduler_interval == "step":
                        scheduler.step()
                    accumulator.update(step, y)
                    global_step += 1
                    if (stop.requested if link is None else link.stop_requested):  # all ranks agree
                        checkpoint(epoch, batch_index + 1)
                        raise TrainingInterrupted(
                            f"{stop.what} at epoch {epoch + 1}, step {batch_index + 1}; state saved to "
                            f"{checkpoint_path}; resume with: mtlcli train --resume {output_dir}", stop.signum
                        )
                batch_start = 0

                model.on_train_epoch_end(epoch)
                distributed.all_reduce_sum_(accumulator.sums)
                train_results = accumulator.results()
                accumulator.sums.zero_()
                train_rows += outputs.epoch_rows(epoch + 1, train_results)
                text = f"epoch {epoch + 1}/{self.max_epochs}  train loss {average(train_results).loss:.4f} acc {average(train_results).accuracy:.4f}"
                postfix = {"train_acc": f"{average(train_results).accuracy:.4f}"}
                if data.val is not None:
                    val_results = run_evaluation(data.val)
                    val_rows += outputs.epoch_rows(epoch + 1, val_results)
                    val_mean = average(val_results)
                    text += f"  val loss {val_mean.loss:.4f} acc {val_mean.accuracy:.4f}"
                    postfix["val_acc"] = f"{val_mean.accuracy:.4f}"
                    if plateau:
                        scheduler.step(val_mean.loss)
                if scheduler is not None and not plateau and self.lr_scheduler_interval == "epoch":
                    scheduler.step()
                progress.epoch_end(text, postfix)

                def write_epoch_csvs() -> None:
                    outputs.write_csv(output_dir / "metrics" / "train.csv", outputs.EPOCH_COLUMNS, train_rows)
                    if data.val is not None:
                        outputs.write_csv(output_dir / "metrics" / "val.csv", outputs.EPOCH_COLUMNS, val_rows)

                # metrics CSVs and the checkpoint are written together: what is on disk is one
                # consistent state (and a stop requested during validation still saves it)
                stopping = distributed.any_rank(stop.requested, device)
                if stopping or (epoch + 1) % self.checkpoint_every_n_epochs == 0 or epoch + 1 == self.max_epochs:
                    distributed.on_main(write_epoch_csvs, device)
                    checkpoint(epoch + 1, 0)
                if stopping:
                    raise TrainingInterrupted(
                        f"{stop.what} after epoch {epoch + 1}; state saved to {checkpoint_path}; "
                        f"resume with: mtlcli train --resume {output_dir}", stop.signum
                    )

        test_results = run_evaluation(data.test)
        distributed.on_main(lambda: outputs.write_test_results(output_dir, test_results), device)
        return test_results

    @staticmethod
    def _ddp_sync(network: torch.nn.Module, model: MTLAlgorithm, world: distributed.World):
        """Gradient methods average per-task gradients themselves: DDP must not average ``.grad``."""
        if world.distributed and model.averages_own_gradients:
            return network.no_sync()
        return nullcontext()


class _StopFlag:
    """The first Ctrl-C or SIGTERM asks the loop to stop at the next step boundary (so the
    saved state is consistent); a second one interrupts at once, except while a checkpoint
    is being written (the loop stops right after it)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.writing = False  # a checkpoint is being written: a second signal waits for it
        self.signum: int = signal.SIGINT  # what stopped the run (another rank's Ctrl-C: SIGINT)
        self._previous: dict[int, object] = {}

    @property
    def what(self) -> str:
        return "terminated (SIGTERM)" if self.signum == signal.SIGTERM else "interrupted"

    def _handle(self, signum, frame):
        if self.requested and not self.writing:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum

    def __enter__(self):
        for signum in self.SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: keep the default behaviour
                pass
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        return False
