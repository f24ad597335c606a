"""Training throughput (samples/s) of 1 process against 2 data-parallel processes on CPU.

Two workloads on the embedded digits (5 tasks, JointLearning): the default MLP,
and the small CNN (``backbone=cnn``). Each is a ``Trainer.fit`` as a user runs it
(train CSV metrics, one checkpoint and the test pass included; no validation
split, so that the small dataset's per-epoch evaluation does not dominate), timed
from a barrier after every process has built its data and model. The 2-process runs use
gloo over 127.0.0.1, with the same global batch size (each process computes half
of every batch). Threads: the single process gets all cores, each of the 2
processes half of them, so both use the same machine.

Prints samples/s for each and the ratio 2-process / 1-process; above 1 the second
process pays for its communication. ``--threads 1`` gives every process one
thread (a fair comparison on a machine that other jobs share: spinning OpenMP
threads on contended cores distort the 1-process number most).

    python bench/ddp_throughput.py [--epochs 5] [--batch-size 128] [--workloads mlp cnn] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

WORKLOADS = {
    "mlp": [],
    "cnn": ["backbone=cnn", "backbone.input_channels=1", "backbone.channels=[32,64]", "backbone.output_dim=64"],
}


def _overrides(workload: str, epochs: int, batch_size: int) -> list[str]:
    # no validation split and one checkpoint at the end: the time is the training steps'
    return [*WORKLOADS[workload], f"trainer.max_epochs={epochs}", f"mtl_dataset.batch_size={batch_size}",
            "trainer.device=cpu", "lr_scheduler=cosine", f"lr_scheduler.T_max={epochs}",
            "mtl_dataset.cl_dataset.validation_percentage=0", f"+trainer.checkpoint_every_n_epochs={epochs}"]


def _train(workload: str, epochs: int, batch_size: int, threads: int) -> tuple[float, int]:
    """Build and train in this process (one rank, or the only process); returns (seconds, samples)."""
    import torch.distributed as dist

    from mtlcli.compose import compose
    from mtlcli.engine import distributed
    from mtlcli.engine.progress import Progress
    from mtlcli.experiment import build_run, run_data
    from mtlcli.resources import config_search_path

    torch.set_num_threads(threads)
    composed = compose("example_mtl_train", _overrides(workload, epochs, batch_size), config_search_path())
    built = build_run(composed.config, composed)
    with distributed.process_group(built.device) as world, tempfile.TemporaryDirectory() as out:
        data = run_data(built, world)
        if world.distributed:
            dist.barrier()
        start = time.perf_counter()
        built.trainer.fit(built.model, built.optimizer, built.scheduler, data, Path(out), Progress("quiet"))
        elapsed = time.perf_counter() - start
        if world.distributed:  # the slowest process sets the pace
            slowest = torch.tensor([elapsed])
            dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
            elapsed = float(slowest)
    return elapsed, epochs * len(data.train)


def _rank(rank: int, world_size: int, port: int, args: tuple, results) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world_size)})
    elapsed, samples = _train(*args)
    if rank == 0:
        results.put((elapsed, samples))


def run_two(workload: str, epochs: int, batch_size: int, threads: int) -> tuple[float, int]:
    from mtlcli.engine.distributed import free_local_port

    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    mp.spawn(_rank, args=(2, free_local_port(), (workload, epochs, batch_size, threads), results), nprocs=2)
    return results.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128, help="global batch (over both processes)")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per process (default: all cores for 1 process, half each for 2)")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    one_threads = args.threads or cores
    two_threads = args.threads or max(1, cores // 2)
    if "lo" in [name for _, name in __import__("socket").if_nameindex()]:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {cores} cores; "
          f"{args.epochs} epochs, global batch {args.batch_size}; threads: {one_threads} (1 process), "
          f"{two_threads} per process (2 processes)")
    print(f"{'workload':<9} {'1 proc (samples/s)':>19} {'2 procs (samples/s)':>20} {'ratio':>7}")
    for workload in args.workloads:
        one_s, one_n = _train(workload, args.epochs, args.batch_size, one_threads)
        two_s, two_n = run_two(workload, args.epochs, args.batch_size, two_threads)
        one, two = one_n / one_s, two_n / two_s
        print(f"{workload:<9} {one:>19.0f} {two:>20.0f} {two / one:>7.2f}")


if __name__ == "__main__":
    main()
