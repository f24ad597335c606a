"""Samples per second of mtlcli's training loop against a minimal plain-PyTorch loop.

Both train the default experiment's model (MLP + one head per task, JointLearning's
mean of per-task cross-entropies) on the same mixed-task data with the same batch
size, in this process. mtlcli's number is a full ``Trainer.fit`` as a user runs it
(progress off, per-epoch validation, CSV metrics and checkpoints included); the
plain loop only trains. Target: ratio >= 0.9.

    python bench/loop_overhead.py [--epochs 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def build(epochs: int):
    from mtlcli.compose import compose
    from mtlcli.experiment import build_run, run_data
    from mtlcli.resources import config_search_path

    composed = compose("example_mtl_train", [f"trainer.max_epochs={epochs}"], config_search_path())
    built = build_run(composed.config, composed)
    return built, run_data(built)


def time_mtlcli(epochs: int) -> tuple[float, int]:
    from mtlcli.engine.progress import Progress

    built, data = build(epochs)
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
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    time_plain(1), time_mtlcli(1)  # warm-up: imports, data loading, allocator
    best_plain = best_mtlcli = 0.0
    for _ in range(args.repeats):  # interleaved, best of N: robust to a busy machine
        seconds, samples = time_plain(args.epochs)
        best_plain = max(best_plain, samples / seconds)
        seconds, samples = time_mtlcli(args.epochs)
        best_mtlcli = max(best_mtlcli, samples / seconds)
    print(f"machine: {platform.platform()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"plain PyTorch loop : {best_plain:10.0f} samples/s")
    print(f"mtlcli Trainer.fit : {best_mtlcli:10.0f} samples/s")
    print(f"ratio mtlcli/plain : {best_mtlcli / best_plain:10.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
