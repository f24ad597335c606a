"""From a composed config to a finished run: build the objects, check they fit, train.

The data flow is one way: CLI -> compose -> validate -> instantiate -> engine.
This module is the only place that knows both the config layout and the engine.
"""

from __future__ import annotations

import random
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from mtlcli.engine import distributed
from mtlcli.errors import ConfigError, MtlcliError, Origin, UsageError

CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = Path("checkpoints") / "last.pt"


@dataclass
class BuiltRun:
    """Every object a run needs, built from one config."""

    config: dict
    dataset: Any
    model: Any
    optimizer: Any
    scheduler: Any
    trainer: Any
    train_tasks: list[int]
    eval_tasks: list[int]
    device: torch.device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_tasks(value: Any, available: list[int], key: str, origin: Origin | None = None) -> list[int]:
    """``train_tasks``/``eval_tasks``: an int N means tasks 1..N; a list names task ids."""
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{key} must be an int N (tasks 1..N) or a list of task ids, got {value!r}", origin)
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}", origin)
        tasks = list(range(1, value + 1))
    elif isinstance(value, (list, tuple)) and value and all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        tasks = list(value)
        if len(set(tasks)) != len(tasks):
            raise ConfigError(f"{key} lists a task twice: {tasks}", origin)
    else:
        raise ConfigError(f"{key} must be an int N (tasks 1..N) or a non-empty list of task ids, got {value!r}", origin)
    missing = [t for t in tasks if t not in available]
    if missing:
        raise ConfigError(f"{key} names task(s) {missing} that the dataset does not have (its tasks: {available})", origin)
    return tasks


def _origin(composed, key: str) -> Origin | None:
    return composed.origin(key) if composed is not None else None


def _section(config: dict, key: str, composed) -> Any:
    """A component section: a mapping with the ``_target_`` that builds it."""
    if key not in config or config[key] is None:
        raise ConfigError(f"the experiment config has no '{key}' (add a defaults entry '/{key}: ...' or set it)",
                          _origin(composed, key) if composed is not None and key in config else None)
    section = config[key]
    if not isinstance(section, dict) or "_target_" not in section:
        raise ConfigError(f"'{key}' has no _target_ naming the class that builds it "
                          f"(select an option, e.g. {key}=..., or add a _target_)", _origin(composed, key))
    return section


def build_run(config: dict, composed=None) -> BuiltRun:
    """Instantiate dataset, trainer, backbone, heads, algorithm, optimizer and scheduler."""
    from mtlcli.heads import MTLHeads
    from mtlcli.instantiate import instantiate

    origins = composed
    seed = config.get("global_seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ConfigError(f"global_seed must be an int in 0..2**63-1, got {seed!r}", _origin(composed, "global_seed"))
    seed_everything(seed)

    trainer = instantiate(_section(config, "trainer", composed), origins=origins, path="trainer")
    try:
        device = trainer.device
    except ConfigError:
        raise
    except MtlcliError as err:  # an unknown or unavailable device: point at the setting
        raise ConfigError(str(err), _origin(composed, "trainer.device")) from err
    dataset = instantiate(_section(config, "mtl_dataset", composed), origins=origins, path="mtl_dataset")
    dataset.setup()
    train_tasks = resolve_tasks(config.get("train_tasks"), dataset.task_ids, "train_tasks", _origin(composed, "train_tasks"))
    eval_tasks = resolve_tasks(config.get("eval_tasks", config.get("train_tasks")), dataset.task_ids, "eval_tasks",
                               _origin(composed, "eval_tasks"))
    untrained = [t for t in eval_tasks if t not in train_tasks]
    if untrained:
        raise ConfigError(f"eval_tasks {untrained} are not in train_tasks {train_tasks}: their heads would be untrained",
                          _origin(composed, "eval_tasks"))

    backbone = instantiate(_section(config, "backbone", composed), origins=origins, path="backbone")
    output_dim = _check_backbone(backbone, dataset, train_tasks[0], composed)
    heads = MTLHeads(output_dim, {t: dataset.num_classes[t] for t in train_tasks})
    model = instantiate(_section(config, "mtl_algorithm", composed), origins=origins, path="mtl_algorithm",
                        backbone=backbone, heads=heads).to(device)
    optimizer = instantiate(_section(config, "optimizer", composed), origins=origins, path="optimizer")(model.parameters())
    scheduler = None
    if config.get("lr_scheduler"):
        scheduler = instantiate(config["lr_scheduler"], origins=origins, path="lr_scheduler")(optimizer)
    return BuiltRun(config, dataset, model, optimizer, scheduler, trainer, train_tasks, eval_tasks, device)


def _check_backbone(backbone, dataset, task_id: int, composed) -> int:
    """Catch a backbone that cannot read the dataset, or whose declared ``output_dim`` is wrong,
    before any training starts."""
    x, _ = dataset.tensors(task_id, "train")
    declared = getattr(backbone, "output_dim", None)
    input_dim = getattr(backbone, "input_dim", None)
    features = int(np.prod(tuple(x.shape[1:])))
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            out = backbone(x[:2])
    except RuntimeError as err:
        detail = str(err).splitlines()[0]
        hint = f"backbone.input_dim={input_dim} but a sample has {features} values" if input_dim not in (None, features) else detail
        raise ConfigError(f"the backbone cannot read the dataset's inputs of shape {tuple(x.shape[1:])}: {hint}",
                          _origin(composed, "backbone._target_")) from err
    finally:
        backbone.train(was_training)
    if out.dim() != 2:
        raise ConfigError(f"the backbone must return (batch, features); it returned shape {tuple(out.shape)}",
                          _origin(composed, "backbone._target_"))
    if declared is not None and out.shape[1] != declared:
        raise ConfigError(f"backbone/heads dimension mismatch: the backbone declares output_dim={declared} "
                          f"but produces {out.shape[1]} features", _origin(composed, "backbone.output_dim"))
    return int(out.shape[1])


def run_data(built: BuiltRun, world=None):
    """Move the task-labelled splits to the device once; build the mixed batch sampler
    (in a data-parallel ``world``, each process samples its piece of every global batch)."""
    from mtlcli.data import MixedBatchSampler
    from mtlcli.engine import RunData, TaskData
    from mtlcli.engine.distributed import World

    world = world or World()

    def split(tasks, name):
        mixed = built.dataset.mixed(tasks, name)
        if mixed.x.shape[0] == 0:
            return None
        return TaskData(mixed.x.to(built.device), mixed.y.to(built.device), mixed.task_id.to(built.device))

    train = split(built.train_tasks, "train")
    if train is None:
        raise MtlcliError("the training tasks have no training samples")
    test = split(built.eval_tasks, "test")
    if test is None:
        raise MtlcliError("the evaluation tasks have no test samples")
    batchnorm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in built.model.backbone.modules())
    _check_pieces(len(train), built.dataset.batch_size, world.world_size, batchnorm)
    sampler = MixedBatchSampler(len(train), built.dataset.batch_size, seed=int(built.config.get("global_seed", 0)),
                                rank=world.rank, world_size=world.world_size, device=built.device)
    return RunData(train=train, val=split(built.train_tasks, "val"), test=test,
                   num_classes=dict(built.model.heads.num_classes), batch_size=built.dataset.batch_size,
                   sampler=sampler)


def _check_pieces(num_samples: int, batch_size: int, world_size: int, batchnorm: bool = False) -> None:
    """Every process needs at least one row of every global batch (an empty piece has no loss
    to differentiate), and two when the backbone has BatchNorm (it cannot normalise a single
    sample in training mode)."""
    need = 2 if batchnorm else 1
    why = " (the backbone's BatchNorm cannot normalise a single sample)" if batchnorm else ""
    last = num_samples % batch_size
    if batch_size // world_size < need:
        per = "per process " if world_size > 1 else ""
        raise ConfigError(f"mtl_dataset.batch_size={batch_size} gives fewer than {need} sample(s) {per}per batch{why}")
    if last and last // world_size < need:
        where = f"for each of the {world_size} processes" if world_size > 1 else "in it"
        raise ConfigError(f"mtl_dataset.batch_size={batch_size}: the last training batch of each epoch has {last} sample(s) "
                          f"({num_samples} samples), fewer than {need} {where}{why}; choose a batch_size that leaves "
                          f"at least {need * world_size} samples or none in the last batch")


def _progress(quiet: bool):
    from mtlcli.engine.progress import Progress

    return Progress("quiet" if quiet else None)


def _claim_output_dir(config: dict, composed, config_text: str) -> Path:
    """Create the run's folder and write its ``config.yaml`` there. Writing that file never
    replaces one, so of two runs started at the same moment with the same ``output_dir``
    exactly one gets the folder and the other stops with a message."""
    from mtlcli.yamlio import atomic_write_text

    value = config.get("output_dir")
    if not isinstance(value, str) or not value:
        raise ConfigError("output_dir must be a non-empty path", _origin(composed, "output_dir"))
    output_dir = Path(value)
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"output_dir {output_dir} is an existing file, not a folder", _origin(composed, "output_dir"))
    if output_dir.exists() and any(output_dir.iterdir()):
        raise MtlcliError(_taken_message(output_dir))
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MtlcliError(f"cannot create output directory {output_dir}: {err.strerror or err}") from err
    try:
        atomic_write_text(output_dir / CONFIG_FILE, config_text, overwrite=False)
    except MtlcliError:
        if (output_dir / CONFIG_FILE).exists():
            raise MtlcliError(_taken_message(output_dir)) from None
        raise
    return output_dir


def _taken_message(output_dir: Path) -> str:
    if (output_dir / CHECKPOINT_FILE).exists():
        advice = f"resume it with --resume {output_dir}, or set output_dir=..."
    else:
        advice = "another run is using it (started at the same moment?); set output_dir=... to choose another folder"
    return f"output directory {output_dir} already exists and is not empty; a run never writes into another run ({advice})"


def _print_summary(title: str, results, output_dir: Path) -> None:
    from mtlcli.engine.outputs import summary_table

    print(summary_table(results, title))
    print(f"results in {output_dir}")


def train_command(experiment: Optional[str], overrides: list[str], *, config_dir: Optional[Path] = None,
                  resume: Optional[Path] = None, quiet: bool = False) -> None:
    """``mtlcli train``: compose, check, build, train, test, summarise."""
    if resume is not None:
        if experiment or overrides:
            raise MtlcliError("--resume continues a run with its saved config; do not pass an experiment or overrides")
        return resume_command(resume, quiet=quiet)
    if not experiment:
        raise UsageError("name an experiment, e.g. mtlcli train example_mtl_train (or a path to a YAML file)")
    from mtlcli.compose import compose
    from mtlcli.resources import config_search_path
    from mtlcli.validate import ensure_valid

    composed = compose(experiment, overrides, config_search_path(config_dir))
    _check_experiment_file(composed)
    ensure_valid(composed)  # the same checks as mtlcli validate
    config = composed.config
    devices = _requested_devices(config, composed)
    if devices > 1 and not distributed.launched_by_torchrun():
        argv = ["train", experiment, *overrides, *(["--config-dir", str(config_dir)] if config_dir else []),
                *(["--quiet"] if quiet else [])]
        return _launch(devices, argv)
    built = build_run(config, composed)
    with distributed.process_group(built.device) as world:
        distributed.check_devices(devices, world)
        data = run_data(built, world)

        output_dir = distributed.on_main(lambda: _claim_output_dir(config, composed, composed.to_yaml()), built.device)  # rank 0's path, on every rank
        progress = _progress(quiet or not world.is_main)
        where = f"{world.world_size} processes ({world.backend})" if world.distributed else str(built.device)
        progress.message(f"training {config.get('expr_name', experiment)} with {type(built.model).__name__}: "
                         f"tasks {built.train_tasks} on {where}, output in {output_dir}")
        with _locked(output_dir, world, built.device):
            results = built.trainer.fit(built.model, built.optimizer, built.scheduler, data, output_dir, progress)
        if world.is_main:
            _print_summary("test", results, output_dir)


@contextmanager
def _locked(run_dir: Path, world, device):
    """Hold the run folder's lock (rank 0) while training; every rank stops if it is taken."""
    from mtlcli import runlock

    lock = distributed.on_main(lambda: runlock.acquire(run_dir), device)
    try:
        yield
    finally:
        if world.is_main:
            runlock.release(lock)


def _requested_devices(config: dict, composed) -> int:
    """``trainer.devices`` (validated by the Trainer itself), before anything heavy is built."""
    from mtlcli.instantiate import instantiate

    return int(getattr(instantiate(_section(config, "trainer", composed), origins=composed, path="trainer"),
                       "devices", 1))


def _launch(devices: int, argv: list[str]) -> None:
    """Run the same command in ``devices`` processes under torchrun; leave with their exit code."""
    from mtlcli import cli

    code = distributed.launch(devices, (["--debug"] if getattr(cli, "_DEBUG", False) else []) + argv)
    if code != 0:
        raise SystemExit(code)


def _check_experiment_file(composed) -> None:
    """An empty experiment file composes to an empty config; name the file rather than
    every field it lacks."""
    from mtlcli.yamlio import display_path, load_yaml

    choice = composed.choices.get("experiment")
    for path in composed.files:
        if str(path) == str(choice) or (path.parent.name == "experiment" and path.stem == choice):
            try:
                load_yaml(path)
            except ConfigError as err:
                if err.message == "empty file":
                    raise ConfigError("the experiment file is empty (it needs a defaults list and train_tasks)",
                                      Origin(display_path(path))) from None
                raise


def _load_run_config(run_dir: Path) -> dict:
    from mtlcli.yamlio import load_yaml, to_plain

    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise MtlcliError(f"run directory not found: {run_dir}")
    if not path.is_file():
        raise MtlcliError(f"{run_dir} is not an mtlcli run directory (no {CONFIG_FILE})")
    return to_plain(load_yaml(path))


def _load_state(built: BuiltRun, checkpoint: dict, path: Path) -> None:
    """Load the model weights, or say how the checkpoint and the config differ."""
    model_state = built.model.state_dict()
    saved = checkpoint["model"]
    if not isinstance(saved, dict):
        raise MtlcliError(f"checkpoint {path} has no model weights")
    mismatch = describe_mismatch(model_state, saved)
    if mismatch:
        raise MtlcliError(f"checkpoint {path} does not fit the run's config: {mismatch}")
    try:
        built.model.load_state_dict(saved)
    except (RuntimeError, KeyError, ValueError, TypeError) as err:  # e.g. an algorithm's extra state
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        raise MtlcliError(f"checkpoint {path} does not fit the run's config: {'; '.join(lines[:2])[:300]}") from err


def _head_tasks(state: dict) -> dict[int, tuple]:
    """Task id -> shape of its head's weight, from ``heads.heads.<task>.weight`` entries."""
    tasks = {}
    for key, value in state.items():
        parts = key.split(".")
        if len(parts) == 4 and parts[:2] == ["heads", "heads"] and parts[3] == "weight" and parts[2].isdigit():
            tasks[int(parts[2])] = tuple(value.shape)
    return dict(sorted(tasks.items()))


def describe_mismatch(expected: dict, saved: dict) -> str:
    """Why a saved state dict cannot be loaded into a model whose state is ``expected``:
    other tasks, another class count, another backbone size, another architecture.
    Empty when they fit."""
    expected_tasks, saved_tasks = _head_tasks(expected), _head_tasks(saved)
    if list(expected_tasks) != list(saved_tasks):
        return f"the checkpoint has heads for tasks {list(saved_tasks)}, the config trains tasks {list(expected_tasks)}"
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"the config's model has {_some(missing)} that the checkpoint lacks")
        if unexpected:
            parts.append(f"the checkpoint has {_some(unexpected)} that the config's model lacks")
        return "; ".join(parts) + " (another backbone or algorithm?)"
    heads = {f"heads.heads.{t}.{p}" for t in expected_tasks for p in ("weight", "bias")}
    for key, value in expected.items():  # the shared part first: a head only follows the backbone's width
        other = saved[key]
        if key not in heads and hasattr(value, "shape") and hasattr(other, "shape") and value.shape != other.shape:
            return (f"{key} is {_shape(other.shape)} in the checkpoint but {_shape(value.shape)} in the config's "
                    f"model (another backbone size?)")
    for task, shape in expected_tasks.items():
        if saved_tasks[task][0] != shape[0]:
            return f"task {task} has {saved_tasks[task][0]} classes in the checkpoint but {shape[0]} in the config"
        if saved_tasks[task] != shape:
            return (f"task {task}'s head reads {saved_tasks[task][1]} features in the checkpoint but {shape[1]} "
                    f"in the config's model (another backbone size?)")
    return ""


def _shape(shape) -> str:
    return "x".join(str(n) for n in shape) if len(shape) else "a scalar"


def _some(keys: list[str]) -> str:
    shown = ", ".join(keys[:3])
    return f"{shown} and {len(keys) - 3} more" if len(keys) > 3 else shown


_RESUME_KEYS = ("epoch", "batch", "global_step", "optimizer", "scheduler", "rng", "train_sums", "train_rows", "val_rows")


def _load_training_state(built: BuiltRun, checkpoint: dict, path: Path) -> None:
    """Model, optimizer and scheduler state for resuming; one line if the checkpoint cannot serve."""
    missing = [k for k in _RESUME_KEYS if k not in checkpoint]
    if missing:
        raise MtlcliError(f"checkpoint {path} cannot resume a run: it lacks {', '.join(missing)}")
    _load_state(built, checkpoint, path)
    from mtlcli.engine.trainer import type_name

    for part, obj in (("optimizer", built.optimizer), ("scheduler", built.scheduler)):
        saved = checkpoint.get(f"{part}_type", type_name(obj))  # older checkpoints did not record it
        if saved != type_name(obj):
            raise MtlcliError(f"checkpoint {path} was written with {part} {saved}, but the run's config now builds "
                              f"{type_name(obj)}; restore the run's config.yaml or start a new run")
    try:
        built.optimizer.load_state_dict(checkpoint["optimizer"])
    except (ValueError, KeyError, RuntimeError, TypeError) as err:
        raise MtlcliError(f"checkpoint {path}: the optimizer state does not fit the run's optimizer "
                          f"({str(err).splitlines()[0][:200]})") from err
    if built.scheduler is not None and checkpoint["scheduler"]:
        try:
            built.scheduler.load_state_dict(checkpoint["scheduler"])
        except (ValueError, KeyError, RuntimeError, TypeError) as err:
            raise MtlcliError(f"checkpoint {path}: the lr scheduler state does not fit the run's lr_scheduler "
                              f"({str(err).splitlines()[0][:200]})") from err


def resume_command(run_dir: Path, *, quiet: bool = False) -> None:
    """``mtlcli train --resume RUN_DIR``: continue from the last checkpoint, bit-for-bit on CPU.

    A finished run (all epochs done and tested) cannot be continued: that is exit 1 with
    a pointer to ``mtlcli evaluate``, since there is nothing left to run.
    """
    from mtlcli.engine.checkpoint import load_checkpoint, restore_rng_state

    run_dir = Path(run_dir)
    config = _load_run_config(run_dir)
    checkpoint_path = run_dir / CHECKPOINT_FILE
    if not checkpoint_path.exists():
        raise MtlcliError(f"run {run_dir} has no checkpoint ({CHECKPOINT_FILE}): it stopped before its first "
                          f"epoch ended, so there is nothing to resume; start it again with mtlcli train")
    checkpoint = load_checkpoint(checkpoint_path)
    devices = _requested_devices(config, None)
    _check_same_world(run_dir, checkpoint, devices)
    if devices > 1 and not distributed.launched_by_torchrun():
        return _launch(devices, ["train", "--resume", str(run_dir), *(["--quiet"] if quiet else [])])
    built = build_run(config)
    epoch = checkpoint.get("epoch")
    if isinstance(epoch, int) and epoch >= built.trainer.max_epochs and (run_dir / "metrics" / "test.csv").is_file():
        raise MtlcliError(f"run {run_dir} already finished ({built.trainer.max_epochs} epochs); nothing to resume "
                          f"(evaluate it with: mtlcli evaluate {run_dir})")
    with distributed.process_group(built.device) as world:
        distributed.check_devices(devices, world)
        data = run_data(built, world)
        _load_training_state(built, checkpoint, checkpoint_path)
        per_rank = checkpoint.get("rng_per_rank")
        restore_rng_state(per_rank[world.rank] if per_rank else checkpoint["rng"])
        progress = _progress(quiet or not world.is_main)
        with _locked(run_dir, world, built.device):
            progress.message(f"resuming {run_dir} at epoch {checkpoint['epoch'] + 1}, step {checkpoint['batch'] + 1}")
            results = built.trainer.fit(built.model, built.optimizer, built.scheduler, data, run_dir, progress,
                                        state=checkpoint)
        if world.is_main:
            _print_summary("test", results, run_dir)


def _check_same_world(run_dir: Path, checkpoint: dict, devices: int) -> None:
    """A run resumes with the number of processes it was trained with (the sampler's
    pieces, each process's random streams and the optimizer state all assume it)."""
    saved = int(checkpoint.get("world_size", 1))
    world = distributed.env_world()
    now = world.world_size if distributed.launched_by_torchrun() else devices
    if saved == now:
        return
    how = ("mtlcli train --resume {dir}" if saved == 1 else
           f"torchrun --nproc_per_node={saved} -m mtlcli train --resume {{dir}}")
    raise MtlcliError(f"run {run_dir} was trained with {saved} process(es) and cannot resume with {now}; "
                      f"resume it with the same number: {how.format(dir=run_dir)}")


def evaluate_command(run_dir: Path, *, eval_tasks: Optional[list[int]] = None, checkpoint: Optional[Path] = None) -> None:
    """``mtlcli evaluate RUN_DIR``: rebuild the model from the run's config, load weights, test each task."""
    from mtlcli.engine.checkpoint import load_checkpoint
    from mtlcli.engine.evaluation import evaluate
    from mtlcli.engine.outputs import TEST_COLUMNS, csv_text, summary_table, test_rows

    run_dir = Path(run_dir)
    config = _load_run_config(run_dir)
    checkpoint_path = Path(checkpoint) if checkpoint else run_dir / CHECKPOINT_FILE
    payload = load_checkpoint(checkpoint_path)
    built = build_run(config)
    _load_state(built, payload, checkpoint_path)
    tasks = built.eval_tasks if not eval_tasks else resolve_tasks(list(eval_tasks), built.dataset.task_ids, "--eval-tasks")
    untrained = [t for t in tasks if t not in built.train_tasks]
    if untrained:
        raise MtlcliError(f"--eval-tasks {untrained} were not trained in this run (trained: {built.train_tasks})")
    mixed = built.dataset.mixed(tasks, "test")
    results = evaluate(built.model, mixed.x.to(built.device), mixed.y.to(built.device), mixed.task_id.to(built.device),
                       dict(built.model.heads.num_classes), built.dataset.batch_size)
    path = _write_new_eval_csv(run_dir / "metrics", csv_text(TEST_COLUMNS, test_rows(results)))
    print(summary_table(results, "evaluate"))
    print(f"written {path}")


def _write_new_eval_csv(folder: Path, text: str) -> Path:
    """``eval-<time>.csv``, or ``eval-<time>-N.csv`` when an evaluation of the same second exists:
    an earlier evaluation is never replaced."""
    from mtlcli.yamlio import atomic_write_text

    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    for n in range(1000):
        path = folder / (f"eval-{stamp}.csv" if n == 0 else f"eval-{stamp}-{n}.csv")
        if path.exists():
            continue
        try:
            atomic_write_text(path, text, overwrite=False)
        except MtlcliError:
            if path.exists():  # another evaluation took the name in between
                continue
            raise
        return path
    raise MtlcliError(f"too many evaluations named eval-{stamp}*.csv in {folder}")
