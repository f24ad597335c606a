"""The shipped mtl_dataset configs build the datasets they describe (and read small
generated files at their roots)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from ruamel.yaml import YAML

from mtlcli.data import MTLDataset
from test_data_files import fake_cifar10, fake_mnist

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "mtl_dataset"


def build(node):
    """A minimal ``_target_`` instantiation (nested nodes first), enough for these configs."""
    if isinstance(node, dict):
        node = {k: build(v) for k, v in node.items()}
        if "_target_" in node:
            module, _, name = node.pop("_target_").rpartition(".")
            return getattr(importlib.import_module(module), name)(**node)
        return node
    if isinstance(node, list):
        return [build(v) for v in node]
    return node


def load(name: str):
    return build(YAML(typ="safe").load((CONFIG_DIR / name).read_text()))


EXPECTED = {
    "split_digits.yaml": ([1, 2, 3, 4, 5], {t: 2 for t in range(1, 6)}, (1, 8, 8)),
    "permuted_digits.yaml": ([1, 2, 3, 4, 5], {t: 10 for t in range(1, 6)}, (1, 8, 8)),
    "from_cl_split_mnist.yaml": ([1, 2, 3, 4, 5], {t: 2 for t in range(1, 6)}, (1, 28, 28)),
    "split_cifar10.yaml": ([1, 2, 3, 4, 5], {t: 2 for t in range(1, 6)}, (3, 32, 32)),
    "combined_mnist_fashion_kmnist.yaml": ([1, 2, 3], {1: 10, 2: 10, 3: 10}, (1, 28, 28)),
}


def test_every_shipped_dataset_config_is_covered():
    assert sorted(p.name for p in CONFIG_DIR.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_config_builds_without_reading_data(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/ here: construction must not need it
    dataset = load(name)
    task_ids, num_classes, input_shape = EXPECTED[name]
    assert isinstance(dataset, MTLDataset) and dataset.sampling_strategy == "mixed"
    assert dataset.task_ids == task_ids
    assert dataset.num_classes == num_classes
    assert dataset.input_shape == input_shape


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_config_loads_data_at_its_roots(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_mnist(tmp_path / "data" / "MNIST" / "MNIST" / "raw", gz=True)  # torchvision's layout
    fake_mnist(tmp_path / "data" / "FashionMNIST", seed=1)
    fake_mnist(tmp_path / "data" / "KMNIST" / "raw", seed=2)
    fake_cifar10(tmp_path / "data" / "CIFAR10" / "cifar-10-batches-py")
    dataset = load(name)
    dataset.setup()
    mixed = dataset.mixed(dataset.task_ids, "train")
    assert mixed.x.shape[1:] == dataset.input_shape and mixed.x.dtype == torch.float32
    assert sorted(mixed.task_id.unique().tolist()) == dataset.task_ids
    for t in dataset.task_ids:
        assert int(mixed.y[mixed.task_id == t].max()) < dataset.num_classes[t]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_config_builds_with_hydra_containers(name, tmp_path, monkeypatch):
    """Hydra hands nested values over as DictConfig/ListConfig, not dict/list."""
    hydra_utils = pytest.importorskip("hydra.utils")
    omegaconf = pytest.importorskip("omegaconf")
    monkeypatch.chdir(tmp_path)
    config = omegaconf.OmegaConf.create(YAML(typ="safe").load((CONFIG_DIR / name).read_text()))
    dataset = hydra_utils.instantiate(config)
    task_ids, num_classes, input_shape = EXPECTED[name]
    assert (dataset.task_ids, dataset.num_classes, dataset.input_shape) == (task_ids, num_classes, input_shape)
