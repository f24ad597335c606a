"""Data-parallel training on PyTorch's own engine: process groups, rank helpers, the
per-step link to the global batch, and the ``trainer.devices=N`` launcher.

How a run becomes distributed:

* ``torchrun --nproc_per_node=N -m mtlcli train ...`` starts N processes with the
  usual ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``
  variables; :func:`process_group` reads them and joins the group (gloo on CPU,
  nccl on CUDA, one GPU per local rank). Several machines: the same command on each
  with torchrun's rendezvous arguments (``--nnodes``, ``--node_rank`` and
  ``--master_addr``/``--master_port``, or ``--rdzv-backend=c10d
  --rdzv-endpoint=HOST:PORT``).
* ``mtlcli train ... trainer.devices=N`` (not under torchrun) runs the same command
  again under ``torch.distributed.run`` with N local processes: :func:`launch`.

What each step exchanges (see :class:`DistributedStep`): every global batch is cut
into one contiguous piece per rank by the sampler. Per-task losses are means over
the GLOBAL batch (per-task sums and counts are all-reduced), and each rank's loss
carries ``world_size`` times its share of the gradient, so averaging gradients over
ranks (what DistributedDataParallel does with ``.grad``, and what the Jacobian
engine does with each task's gradient) gives exactly the single-process gradient
of that global batch.

BatchNorm: each rank normalises with its own piece's statistics (DDP's default);
running statistics are kept per rank and averaged over ranks before every
evaluation and checkpoint. ``trainer.sync_batchnorm=true`` (CUDA only) normalises
with the global batch's statistics instead (SyncBatchNorm).
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import sys
import tempfile
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from mtlcli.errors import MtlcliError

T = TypeVar("T")

# torchrun's variables (also set by a plain ``python -m torch.distributed.run``)
_LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    """Where this process stands among the processes of one run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None  # None: one process, no group

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes outputs and checkpoints and prints."""
        return self.rank == 0


# ---------------------------------------------------------------------------
# the process group
# ---------------------------------------------------------------------------
def launched_by_torchrun() -> bool:
    """True inside a process started by torchrun / ``torch.distributed.run``."""
    return all(v in os.environ for v in _LAUNCHER_VARS)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value is not None else default
    except ValueError as err:
        raise MtlcliError(f"environment variable {name}={value!r} is not an integer") from err


def env_world() -> World:
    """The world torchrun describes in the environment (one process when not under torchrun)."""
    if not launched_by_torchrun():
        return World()
    world_size = _env_int("WORLD_SIZE", 1)
    return World(rank=_env_int("RANK", 0), world_size=world_size, local_rank=_env_int("LOCAL_RANK", 0),
                 local_world_size=_env_int("LOCAL_WORLD_SIZE", world_size))


def current() -> World:
    """This process's world: the initialised process group, or one process."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    env = env_world()
    return World(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=env.local_rank,
                 local_world_size=env.local_world_size, backend=str(dist.get_backend()))


def check_devices(devices: int, world: World) -> None:
    """``trainer.devices`` against what torchrun started (devices=1 lets torchrun decide)."""
    if devices > 1 and world.distributed and devices != world.local_world_size:
        raise MtlcliError(f"trainer.devices={devices} but torchrun started {world.local_world_size} process(es) "
                          f"on this machine; set trainer.devices={world.local_world_size} (or 1 to let torchrun decide)")


def rank_device(device: torch.device, world: World) -> torch.device:
    """One CUDA device per local rank; CPU processes share the CPU."""
    if device.type != "cuda" or not world.distributed:
        return device
    if device.index not in (None, world.local_rank):
        raise MtlcliError(f"trainer.device={device} names one GPU, but each of the {world.local_world_size} processes "
                          f"on this machine takes its own GPU (use trainer.device=cuda)")
    if world.local_rank >= torch.cuda.device_count():
        raise MtlcliError(f"process {world.local_rank} on this machine has no GPU: {torch.cuda.device_count()} "
                          f"visible, {world.local_world_size} processes started")
    return torch.device("cuda", world.local_rank)


@contextmanager
def process_group(device: torch.device) -> Iterator[World]:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA) for the
    duration of a run, and leave it afterwards. Yields the :class:`World`."""
    world = env_world()
    if not world.distributed or (dist.is_available() and dist.is_initialized()):
        yield current()
        return
    if not dist.is_available():
        raise MtlcliError("this PyTorch build has no torch.distributed; train with one process")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(rank_device(device, world))
    try:
        dist.init_process_group(backend=backend, init_method="env://", rank=world.rank, world_size=world.world_size)
    except (RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MtlcliError(f"cannot join the process group ({backend}, rank {world.rank} of {world.world_size}): "
                          f"{first[:200]}") from err
    try:
        yield current()
    except BaseException as err:
        # The traceback keeps the run's frames, and with them DDP and its reducer, alive
        # past the group's end; torn down at interpreter exit they wait on peers that
        # are gone. Clearing the finished frames' locals lets them go now.
        traceback.clear_frames(err.__traceback__)
        raise
    finally:
        gc.collect()
        dist.destroy_process_group()


# ---------------------------------------------------------------------------
# collectives (no-ops on one process)
# ---------------------------------------------------------------------------
def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum_(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` over ranks, in place."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def average_(tensor: Tensor) -> Tensor:
    """Average ``tensor`` over ranks, in place."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(dist.get_world_size())
    return tensor


def any_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True when ``flag`` is true on at least one rank (a collective: every rank must call it)."""
    if not _active():
        return bool(flag)
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def broadcast_object(obj: T, device: torch.device | str | None = None) -> T:
    """Rank 0's ``obj`` on every rank (picklable objects)."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=_object_device(device))
    return box[0]


def gather_objects(obj: Any, device: torch.device | str | None = None) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _object_device(device) -> torch.device | None:
    if device is None:
        return None
    device = torch.device(device)
    return device if device.type == "cuda" else None


def on_main(fn: Callable[[], T], device: torch.device | str | None = None) -> T:
    """Run ``fn`` on rank 0 only (e.g. create the output folder) and hand its result to
    every rank; if it raises a user error, every rank raises the same one, so all stop together."""
    if not _active():
        return fn()
    result: tuple[str, Any] = ("ok", None)
    if dist.get_rank() == 0:
        try:
            result = ("ok", fn())
        except MtlcliError as err:
            result = ("error", (str(err), getattr(err, "exit_code", 1)))
    status, value = broadcast_object(result, device)
    if status == "error":
        message, exit_code = value
        error = MtlcliError(message)
        error.exit_code = exit_code
        raise error
    return value


def average_buffers(module: nn.Module) -> None:
    """Average the floating-point buffers (BatchNorm running statistics) over ranks.

    Each rank's running mean is an exponential average of its pieces' means, and the
    average is linear: its mean over ranks is the running mean of the global batches
    (exactly, when the pieces have equal sizes). The running variance so averaged
    leaves out the spread between pieces' means (slightly low).
    """
    if not _active():
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.detach().reshape(-1).to(torch.float64) for b in buffers])
    average_(flat)
    offset = 0
    for b in buffers:
        n = b.numel()
        b.copy_(flat[offset:offset + n].view_as(b))
        offset += n


# ---------------------------------------------------------------------------
# one step of a data-parallel run
# ---------------------------------------------------------------------------
class DistributedStep:
    """One training step as one rank sees it; what an algorithm needs to act on the
    GLOBAL batch (the union of all ranks' pieces) while holding only its piece.

    The trainer makes one per step and passes it to ``MTLAlgorithm.training_step``.
    Algorithms use it in two places only: per-task losses
    (:meth:`global_task_means`, through ``MTLAlgorithm.task_losses``) and, for
    gradient methods, the averaging of per-task gradients in the Jacobian engine
    (:meth:`average_`). Both are collectives: every rank reaches them in the same
    order, which holds because every decision that follows depends only on
    global values.

    Args:
        forward: the model's forward as DistributedDataParallel wraps it (its forward
            prepares the gradient averaging of the next backward).
        task_ids: every task the heads know, in head order: the order of the exchanged vectors.
        world_size: number of processes.
        stop_requested: this rank's Ctrl-C flag; after the step's first exchange,
            :attr:`stop_requested` is true when any rank asked to stop, so all ranks stop
            at the same step.
    """

    def __init__(self, forward: Callable, task_ids: Sequence[int], world_size: int, stop_requested: bool = False):
        self.forward = forward
        self.task_ids = [int(t) for t in task_ids]
        self.world_size = int(world_size)
        self.stop_requested = bool(stop_requested)
        self.local_task_ids: list[int] = []   # tasks with rows in this rank's piece
        self.global_counts: dict[int, int] = {}  # task -> rows in the global batch (tasks present)

    def global_task_means(self, sums: dict[int, Tensor], counts: dict[int, int]) -> dict[int, Tensor]:
        """Per task present anywhere in the global batch, its mean loss over the global batch.

        ``sums[t]``: this rank's summed loss over its ``counts[t]`` rows of task t.
        Each returned loss has the global mean as its value; its gradient is
        ``world_size * ∇(sums[t] / N_t)`` with ``N_t`` the global row count, so the
        average of the ranks' gradients is the gradient of the global mean. A task with
        no row on this rank gets its global value without a gradient.
        """
        if not sums:
            raise MtlcliError("a process received an empty piece of a batch (fewer rows than processes)")
        ref = next(iter(sums.values()))
        n = len(self.task_ids)
        position = {t: k for k, t in enumerate(self.task_ids)}
        stats = torch.zeros(2 * n + 1, dtype=torch.float64, device=ref.device)
        rows = torch.tensor([position[t] for t in sums], device=ref.device)
        stats[rows] = torch.stack([s.detach().to(torch.float64).reshape(()) for s in sums.values()])
        stats[rows + n] = torch.tensor([float(counts[t]) for t in sums], dtype=torch.float64, device=ref.device)
        stats[2 * n] = 1.0 if self.stop_requested else 0.0
        all_reduce_sum_(stats)
        host = stats.tolist()  # one host sync per step: which tasks are present, and how often
        self.stop_requested = host[2 * n] > 0
        self.local_task_ids = list(sums)
        self.global_counts = {}
        out: dict[int, Tensor] = {}
        for k, t in enumerate(self.task_ids):
            count = host[n + k]
            if count <= 0:
                continue
            self.global_counts[t] = int(round(count))
            value = stats[k] / count
            if t in sums:
                local = sums[t] * (self.world_size / count)
                # value of the global mean, gradient of the local share (local - local.detach() is exactly 0)
                out[t] = value.to(local.dtype) + (local - local.detach())
            else:
                out[t] = value.to(ref.dtype)
        return out

    def average_(self, tensor: Tensor) -> Tensor:
        """Average ``tensor`` over ranks, in place (per-task gradients before aggregation)."""
        return average_(tensor)


def ddp_ignored_names(model: nn.Module) -> list[str]:
    """Parameters and buffers DDP must leave alone: the algorithm's own state.

    DDP synchronises the network (backbone and heads). An algorithm's own
    parameters and buffers (learned log-variances, loss histories, momenta) are
    computed from global quantities on every rank, so they are already equal
    everywhere; letting DDP see them would make its unused-parameter search fail for
    parameters used only after the forward (e.g. in the loss combination).
    """
    network = ("backbone.", "heads.")
    names = [name for name, _ in model.named_parameters() if not name.startswith(network)]
    names += [name for name, _ in model.named_buffers() if not name.startswith(network)]
    # DDP matches a top-level parameter (e.g. UW's ``log_variance``) as ".log_variance"
    # when it builds its reducer (module name "" + "." + name) and as "log_variance" elsewhere
    return names + ["." + name for name in names if "." not in name]


def wrap_model(model: nn.Module, device: torch.device, sync_batchnorm: bool = False) -> nn.Module:
    """The model under DistributedDataParallel (returns ``model`` itself on one process).

    ``find_unused_parameters``: a rank whose piece misses a task never uses that task's
    head; DDP then still averages the head's gradient from the other ranks, and a head
    no rank used keeps no gradient (as on one process, so the optimizer skips it).
    Buffers are not broadcast at each forward (see :func:`average_buffers`).
    """
    if not _active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    if sync_batchnorm:
        model.backbone = nn.SyncBatchNorm.convert_sync_batchnorm(model.backbone)
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, ddp_ignored_names(model))
    device_ids = [device.index] if device.type == "cuda" else None
    import inspect

    no_buffer_sync = ({"forward_sync_buffers": False}
                      if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                      else {"broadcast_buffers": False})
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True, **no_buffer_sync)


def shard(n: int, world: World) -> tuple[int, int]:
    """This rank's contiguous ``[start, end)`` of ``n`` evaluation rows (sizes differ by at most one)."""
    base, extra = divmod(n, world.world_size)
    start = world.rank * base + min(world.rank, extra)
    return start, start + base + (1 if world.rank < extra else 0)


# ---------------------------------------------------------------------------
# the trainer.devices=N launcher
# ---------------------------------------------------------------------------
def free_local_port() -> int:
    """A TCP port free on 127.0.0.1 now (the launcher's rendezvous port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _loopback_interface() -> str | None:
    try:
        names = [name for _, name in socket.if_nameindex()]
    except (OSError, AttributeError):
        return None
    return next((n for n in ("lo", "lo0") if n in names), None)


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m mtlcli ARGV`` in ``nproc`` local processes under torch.distributed.run;
    returns the exit code to leave with.

    One machine, so the rendezvous is 127.0.0.1 on a free port and gloo talks over
    the loopback interface. Only rank 0's output reaches the console; the other
    ranks' error output goes to a log folder, and the first failing rank's last line
    is shown when rank 0 did not report the failure itself.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    if nproc < 2:
        raise ValueError("launch needs at least 2 processes")
    env_before = dict(os.environ)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    # DDP's one-time C++ note that no head went unused in the first step is expected here
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    loopback = _loopback_interface()
    if loopback is not None:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", loopback)
    log_dir = tempfile.mkdtemp(prefix="mtlcli-ranks-")
    quiet_ranks = ",".join(f"{r}:2" for r in range(1, nproc))
    args = get_args_parser().parse_args([
        "--nnodes=1", f"--nproc-per-node={nproc}", "--master-addr=127.0.0.1", f"--master-port={free_local_port()}",
        "--max-restarts=0", f"--log-dir={log_dir}", f"--redirects={quiet_ranks}",
        "--local-ranks-filter=0", "-m", "mtlcli", *argv,
    ])
    import logging

    for name in list(logging.root.manager.loggerDict):  # the agent's notes are not the user's business
        if name.startswith(("torch.distributed.elastic", "torch.distributed.run")):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        run(args)
        return 0
    except ChildFailedError as err:
        return _report_failure(err, Path(log_dir))
    except SignalException:
        # Ctrl-C (or SIGTERM) reached the launcher, which passed it on to the processes:
        # they stop together at a step boundary, rank 0 saves the state and says so.
        from mtlcli.errors import EXIT_INTERRUPTED

        return EXIT_INTERRUPTED
    finally:
        os.environ.clear()
        os.environ.update(env_before)
        shutil.rmtree(log_dir, ignore_errors=True)  # read already (a failure's message)


def _report_failure(err, log_dir: Path) -> int:
    """Exit code of a failed launch. Rank 0's output reaches the console: when it failed by
    itself it has said why; otherwise the first failing rank's last error line is printed."""
    failures = dict(err.failures)
    own = {rank: f for rank, f in failures.items() if f.exitcode is not None and f.exitcode > 0}
    if 0 in own:
        return own[0].exitcode
    rank, failure = min(own.items()) if own else min(failures.items())
    line = _last_line(_stderr_log(log_dir, rank))
    print(f"error: process {rank} failed: {line or f'exit code {failure.exitcode}'}", file=sys.stderr)
    return failure.exitcode if failure.exitcode is not None and failure.exitcode > 0 else 1


def _stderr_log(log_dir: Path, local_rank: int) -> Path:
    found = sorted(log_dir.glob(f"**/attempt_*/{local_rank}/stderr.log"))
    return found[-1] if found else log_dir / "missing"


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    line = lines[-1] if lines else ""
    return line[len("error: "):] if line.startswith("error: ") else line
