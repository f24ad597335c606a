"""Data-parallel training: 2 CPU processes (gloo, 127.0.0.1 only) reproduce the
single-process run over the same global batches.

The references are single-process runs of the same configs in this process. The
2-process runs use the two real entry points: the worker of ``torchrun -m mtlcli
train`` (spawned here with torchrun's environment variables; each rank in a folder
of its own, so that what rank 1 writes can be seen), and ``trainer.devices=2``,
which relaunches the command under torch.distributed.run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from mtlcli.engine.distributed import DistributedStep, World, free_local_port, shard
from mtlcli.engine.outputs import read_csv
from mtlcli.errors import MtlcliError

# No BatchNorm: per-process batch statistics would (rightly) differ from one process's.
# batch_size=37 cuts every global batch into uneven pieces (19 + 18 rows).
COMMON = ["backbone.batch_normalization=false", "backbone.hidden_dims=[32]", "backbone.output_dim=16",
          "trainer.max_epochs=1", "mtl_dataset.batch_size=37", "global_seed=3"]
# JointLearning; UW, whose own parameter (log-variances) is used only after the forward;
# UPGrad, a gradient method (per-task gradients averaged before aggregation)
ALGORITHMS = {"joint_learning": [], "uw": ["mtl_algorithm=uw"], "upgrad": ["mtl_algorithm=upgrad"]}
LOOPBACK_ENV = {"MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo"}


def _overrides(algorithm: str, output_dir: str) -> list[str]:
    return [*COMMON, *ALGORITHMS[algorithm], f"output_dir={output_dir}"]


def _train_one_process(algorithm: str, output_dir: Path) -> Path:
    from mtlcli.experiment import train_command

    train_command("example_mtl_train", _overrides(algorithm, str(output_dir)), quiet=True)
    return output_dir


def _worker(rank: int, world_size: int, ports: list[int], root: str, algorithms: list[str]) -> None:
    """One torchrun-style process: its own folder, torchrun's variables, the train command.

    Each command gets a rendezvous port of its own, as each torchrun launch would: a
    process group re-created on the same port can meet the previous one's leftovers.
    """
    os.environ.update(LOOPBACK_ENV)
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                       "LOCAL_WORLD_SIZE": str(world_size), "OMP_NUM_THREADS": "1"})
    torch.set_num_threads(1)
    folder = Path(root) / f"rank{rank}"
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    from mtlcli.experiment import train_command

    ports = iter(ports)
    for algorithm in algorithms:  # a relative output_dir: each rank would write into its own folder
        os.environ["MASTER_PORT"] = str(next(ports))
        train_command("example_mtl_train", _overrides(algorithm, f"out_{algorithm}"), quiet=True)
    # A failure on rank 0 alone (its output folder is taken) must stop rank 1 too, with the same message.
    os.environ["MASTER_PORT"] = str(next(ports))
    try:
        train_command("example_mtl_train", _overrides(algorithms[0], f"out_{algorithms[0]}"), quiet=True)
    except MtlcliError as err:
        (Path(root) / f"error{rank}.txt").write_text(str(err))


@pytest.fixture(scope="module")
def spawned(tmp_path_factory) -> Path:
    """Both algorithms trained by 2 spawned processes (one spawn for the whole module)."""
    root = tmp_path_factory.mktemp("ddp")
    ports = _free_ports(len(ALGORITHMS) + 1)
    mp.spawn(_worker, args=(2, ports, str(root), list(ALGORITHMS)), nprocs=2, join=True)
    return root


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_local_port()
        if port not in ports:
            ports.append(port)
    return ports


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("single")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the 2 processes (and as fast for these small layers)
    try:
        return {a: _train_one_process(a, root / a) for a in ALGORITHMS}
    finally:
        torch.set_num_threads(threads)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    return {k: v for k, v in payload["model"].items() if isinstance(v, torch.Tensor) and v.is_floating_point()}


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=1e-5, msg=lambda m: f"{key}: {m}")


def _assert_same_metrics(a: Path, b: Path) -> None:
    for name in ("metrics/train.csv", "metrics/val.csv", "metrics/test.csv"):
        rows_a, rows_b = read_csv(a / name), read_csv(b / name)
        assert [r["task"] for r in rows_a] == [r["task"] for r in rows_b], name
        for ra, rb in zip(rows_a, rows_b):
            assert ra["num_samples"] == rb["num_samples"], (name, ra, rb)  # the whole split, not a shard
            assert float(ra["accuracy"]) == pytest.approx(float(rb["accuracy"]), abs=1e-9), (name, ra, rb)
            assert float(ra["loss"]) == pytest.approx(float(rb["loss"]), rel=1e-4, abs=1e-6), (name, ra, rb)


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_two_processes_reach_the_single_process_weights_and_metrics(spawned, single, algorithm):
    _assert_same_weights(spawned / "rank0" / f"out_{algorithm}", single[algorithm])
    _assert_same_metrics(spawned / "rank0" / f"out_{algorithm}", single[algorithm])


def test_the_runs_are_not_trivially_equal(single):
    """The two algorithms move the weights differently, so weight equality above is informative."""
    ja, up = _weights(single["joint_learning"]), _weights(single["upgrad"])
    assert any(not torch.allclose(ja[k], up[k]) for k in ja)


def test_a_failure_on_rank_0_stops_every_rank_with_its_message(spawned):
    messages = [(spawned / f"error{rank}.txt").read_text() for rank in (0, 1)]
    assert messages[0] == messages[1]
    assert "out_joint_learning already exists and is not empty" in messages[0]


def test_only_rank_0_writes(spawned):
    assert sorted(p.name for p in (spawned / "rank0").iterdir()) == sorted(f"out_{a}" for a in ALGORITHMS)
    assert list((spawned / "rank1").iterdir()) == []
    saved = torch.load(spawned / "rank0" / "out_upgrad" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["world_size"] == 2 and len(saved["rng_per_rank"]) == 2


def test_devices_option_relaunches_under_torchrun(tmp_path, single):
    out = tmp_path / "run"
    env = {**os.environ, **LOOPBACK_ENV}
    cmd = [sys.executable, "-m", "mtlcli", "train", "example_mtl_train", *_overrides("joint_learning", str(out)),
           "trainer.devices=2", "--quiet"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training example_mtl_train" not in done.stderr  # --quiet reached the workers
    assert done.stdout.count("results in") == 1  # rank 0 alone prints the summary
    _assert_same_weights(out, single["joint_learning"])
    _assert_same_metrics(out, single["joint_learning"])


# -- pieces that need no second process ----------------------------------------


def test_resume_refuses_another_number_of_processes(tmp_path, monkeypatch):
    from mtlcli.experiment import _check_same_world

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    _check_same_world(tmp_path, {"world_size": 2}, devices=2)
    with pytest.raises(MtlcliError, match=r"trained with 2 process\(es\) and cannot resume with 1.*nproc_per_node=2"):
        _check_same_world(tmp_path, {"world_size": 2}, devices=1)
    with pytest.raises(MtlcliError, match=r"trained with 1 process\(es\) and cannot resume with 3"):
        _check_same_world(tmp_path, {}, devices=3)


def test_evaluation_shards_cover_the_rows_once():
    for n in (0, 1, 5, 10, 11):
        for world_size in (1, 2, 3, 4):
            pieces = [shard(n, World(rank=r, world_size=world_size)) for r in range(world_size)]
            assert pieces[0][0] == 0 and pieces[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
            assert max(e - s for s, e in pieces) - min(e - s for s, e in pieces) <= 1


def test_global_task_means_on_one_process_are_the_plain_means():
    """With world_size 1 the exchange is the identity: the value is the mean and the
    gradient is that of the mean (scaled by world_size = 1)."""
    logits = torch.randn(5, 3, requires_grad=True)
    sums = {1: logits[:3].sum() * 2.0, 2: logits[3:].sum()}
    step = DistributedStep(forward=None, task_ids=[1, 2, 3], world_size=1)
    means = step.global_task_means(sums, {1: 3, 2: 2})
    assert list(means) == [1, 2]
    assert means[1].item() == pytest.approx(sums[1].item() / 3)
    grad = torch.autograd.grad(means[1] + means[2], logits)[0]
    expected = torch.cat([torch.full((3, 3), 2.0 / 3), torch.full((2, 3), 0.5)])
    torch.testing.assert_close(grad, expected)
    assert step.global_counts == {1: 3, 2: 2} and step.local_task_ids == [1, 2]


def test_trainer_devices_must_match_what_torchrun_started():
    from mtlcli.engine.distributed import check_devices

    torchrun_two = World(rank=0, world_size=4, local_rank=0, local_world_size=2)
    check_devices(1, torchrun_two)  # 1: torchrun decides
    check_devices(2, torchrun_two)
    with pytest.raises(MtlcliError, match=r"trainer.devices=3 but torchrun started 2 process\(es\) on this machine"):
        check_devices(3, torchrun_two)
