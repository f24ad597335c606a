"""Samples per second of mtlcli's training loop against a minimal plain-PyTorch loop.

Both train the default experiment's model (MLP + one head per task, JointLearning's
mean of per-task cross-entropies) on the same mixed-task data with the same batch
size, in this process. Two mtlcli numbers:

- ``training loop``: ``Trainer.fit`` doing what the plain loop does (no validation
  split, one checkpoint at the end, progress off): the loop's own overhead per step.
  Target: ratio >= 0.9.
- ``as configured``: the default experiment as a user runs it, with a validation
  pass, CSV metrics and an atomic checkpoint after every epoch. On the tiny digits
  epochs (about 20 steps) that per-epoch work is a visible share; it is reported,
  not targeted.

    python bench/loop_overhead.py [--epochs 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


LOOP_ONLY = ["mtl_dataset.cl_dataset.validation_percentage=0.0", "~lr_scheduler"]


def build(epochs: int, extra: list[str] = LOOP_ONLY):
    from mtlcli.compose import compose
    from mtlcli.experiment import build_run, run_data
    from mtlcli.resources import config_search_path

    overrides = [f"trainer.max_epochs={epochs}", f"trainer.checkpoint_every_n_epochs={epochs}", *extra]
    if extra != LOOP_ONLY:
        overrides = [f"trainer.max_epochs={epochs}", *extra]
    composed = compose("example_mtl_train", overrides, config_search_path())
    built = build_run(composed.config, composed)
    return built, run_data(built)


def time_mtlcli(epochs: int, extra: list[str] = LOOP_ONLY) -> tuple[float, int]:
    from mtlcli.engine.progress import Progress

    built, data = build(epochs, extra)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        built.trainer.fit(built.model, built.optimizer, built.scheduler, data, Path(out), Progress("quiet"))
        elapsed = time.perf_counter() - start
    return elapsed, epochs * len(data.train)


def time_plain(epochs: int) -> tuple[float, int]:
    built, data = build(epochs)
    model, optimizer = built.model, built.optimizer
    backbone, heads = model.backbone, model.heads
    x, y, t = data.train.x, data.train.y, data.train.task_id
    n, batch_size = x.shape[0], data.batch_size
    tasks = heads.task_ids
    generator = torch.Generator().manual_seed(0)
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            xb, yb, tb = x[idx], y[idx], t[idx]
            optimizer.zero_grad(set_to_none=True)
            features = backbone(xb)
            losses = []
            for task in tasks:
                mask = tb == task
                if mask.any():
                    losses.append(F.cross_entropy(heads.head(task)(features[mask]), yb[mask]))
            torch.stack(losses).mean().backward()
            optimizer.step()
    return time.perf_counter() - start, epochs * n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    time_plain(1), time_mtlcli(1)  # warm-up: imports, data loading, allocator
    best_plain = best_loop = best_configured = 0.0
    for _ in range(args.repeats):  # interleaved, best of N: robust to a busy machine
        seconds, samples = time_plain(args.epochs)
        best_plain = max(best_plain, samples / seconds)
        seconds, samples = time_mtlcli(args.epochs)
        best_loop = max(best_loop, samples / seconds)
        seconds, samples = time_mtlcli(args.epochs, extra=[])
        best_configured = max(best_configured, samples / seconds)
    print(f"machine: {platform.platform()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"plain PyTorch loop            : {best_plain:10.0f} samples/s")
    print(f"mtlcli training loop          : {best_loop:10.0f} samples/s")
    print(f"mtlcli as configured          : {best_configured:10.0f} samples/s  (+ validation, CSVs, checkpoint every epoch)")
    print(f"ratio training loop / plain   : {best_loop / best_plain:10.3f}  (target >= 0.9)")
    print(f"ratio as configured / plain   : {best_configured / best_plain:10.3f}")


if __name__ == "__main__":
    main()
