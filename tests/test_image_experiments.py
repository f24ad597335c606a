"""The shipped image experiments (split CIFAR-10; combined MNIST + Fashion-MNIST +
KMNIST) pass validate and, with data in the real file formats at their roots,
train for an epoch and leave finite metrics for every task.

The data are small files the tests write (random images, labels in every class);
the backbones are slimmed by overrides to stay fast.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from mtlcli.engine.outputs import read_csv
from mtlcli.experiment import train_command
from test_data_files import fake_cifar10, fake_mnist

EXPERIMENTS = Path(__file__).resolve().parent.parent / "configs" / "experiment"
FAST = ["trainer.max_epochs=1", "trainer.device=cpu", "mtl_dataset.batch_size=16"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions run faster on one thread, and much faster on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _check_run(run: Path, tasks: list[int], train_samples: int) -> None:
    for name in ("config.yaml", "checkpoints/last.pt", "metrics/train.csv", "metrics/val.csv", "metrics/test.csv",
                 "results/acc.csv", "results/loss_cls.csv"):
        assert (run / name).is_file(), name
    test = read_csv(run / "metrics" / "test.csv")
    assert [row["task"] for row in test] == [str(t) for t in tasks] + ["average"]
    for row in test:
        assert math.isfinite(float(row["loss"])) and 0.0 <= float(row["accuracy"]) <= 1.0
    train = read_csv(run / "metrics" / "train.csv")
    assert sum(int(row["num_samples"]) for row in train) == train_samples  # one full epoch
    assert all(math.isfinite(float(row["loss"])) for row in train)
    acc = read_csv(run / "results" / "acc.csv")[0]
    assert sorted(acc) == sorted(["average_accuracy", *[f"test_on_task_{t}" for t in tasks]])
    weights = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.isfinite(v).all() for v in weights.values() if torch.is_tensor(v) and v.is_floating_point())


@pytest.mark.parametrize("name", ["split_cifar10.yaml", "combined_mnist_fashion_kmnist.yaml"])
def test_the_image_experiments_pass_validate(name):
    from mtlcli.validate import validate_command

    lines: list[str] = []
    assert validate_command([EXPERIMENTS / name], output_format="text", strict=True, echo=lines.append) == 0, lines


def test_split_cifar10_trains_on_cifar_pickle_batches(tmp_path):
    root = tmp_path / "CIFAR10"
    fake_cifar10(root / "cifar-10-batches-py", n=12)  # 5 x 12 training images, 12 test images
    run = tmp_path / "run"
    # a slim ResNet-18 (base width 4) with the CIFAR stem, as configured
    train_command("split_cifar10", [*FAST, f"mtl_dataset.cl_dataset.root={root}", "backbone.base_width=4",
                                    "backbone.output_dim=16", f"output_dir={run}"], quiet=True)
    config = (run / "config.yaml").read_text()
    assert "mtlcli.backbones.ResNet18" in config and "cifar_stem: true" in config
    train = sum(int(r["num_samples"]) for r in read_csv(run / "metrics" / "train.csv"))
    val = sum(int(r["num_samples"]) for r in read_csv(run / "metrics" / "val.csv"))
    assert train + val == 60 and val > 0  # every training image, once, in one of the two
    _check_run(run, [1, 2, 3, 4, 5], train)


def test_combined_mnist_fashion_kmnist_trains_on_idx_files(tmp_path):
    roots = {1: tmp_path / "MNIST", 2: tmp_path / "FashionMNIST", 3: tmp_path / "KMNIST"}
    fake_mnist(roots[1] / "MNIST" / "raw", n_train=30, n_test=10, seed=1, gz=True)  # torchvision layout, .gz
    fake_mnist(roots[2], n_train=20, n_test=10, seed=2)
    fake_mnist(roots[3], n_train=20, n_test=10, seed=3)
    run = tmp_path / "run"
    train_command("combined_mnist_fashion_kmnist",
                  [*FAST, *[f"mtl_dataset.datasets.{t}.root={root}" for t, root in roots.items()],
                   "backbone.channels=[4,8]", "backbone.output_dim=16", f"output_dir={run}"], quiet=True)
    assert "mtlcli.backbones.CNN" in (run / "config.yaml").read_text()
    test = read_csv(run / "metrics" / "test.csv")
    assert [int(r["num_samples"]) for r in test[:3]] == [10, 10, 10]  # every task's own test file
    train = read_csv(run / "metrics" / "train.csv")
    val = read_csv(run / "metrics" / "val.csv")
    assert [int(a["num_samples"]) + int(b["num_samples"]) for a, b in zip(train, val)] == [30, 20, 20]
    _check_run(run, [1, 2, 3], 70 - sum(int(r["num_samples"]) for r in val))
