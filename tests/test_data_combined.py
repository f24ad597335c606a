"""CombinedMTLDataset: one source per task, shapes unified by resize and channel repetition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mtlcli.data import CombinedMTLDataset, Digits, SplitDigits
from mtlcli.data.sources import ImageSource, SourceData
from mtlcli.data.transforms import apply_transforms
from mtlcli.errors import ConfigError


class FakeSource(ImageSource):
    def __init__(self, name: str, shape: tuple[int, int, int], num_classes: int, n: int = 30, seed: int = 0):
        self.name = name
        self.input_shape = shape
        self.num_classes = num_classes
        self.n = n
        self.seed = seed

    def _read(self) -> SourceData:
        g = torch.Generator().manual_seed(self.seed)
        y = torch.arange(self.n) % self.num_classes
        return SourceData(torch.rand(self.n, *self.input_shape, generator=g), y,
                          torch.rand(self.n // 2, *self.input_shape, generator=g), y[: self.n // 2])


def test_same_shaped_sources_combine_without_configuration():
    sources = {1: FakeSource("A", (1, 28, 28), 10), 2: FakeSource("B", (1, 28, 28), 10, seed=1),
               3: FakeSource("C", (1, 28, 28), 4, seed=2)}
    ds = CombinedMTLDataset(sources, validation_percentage=0.2, batch_size=16)
    assert ds.task_ids == [1, 2, 3] and ds.num_classes == {1: 10, 2: 10, 3: 4}
    assert ds.input_shape == (1, 28, 28)
    x, y = ds.tensors(3, "test")
    assert torch.equal(x, sources[3].load().test_x) and torch.equal(y, sources[3].load().test_y)
    x_train, _ = ds.tensors(2, "train")
    x_val, _ = ds.tensors(2, "val")
    assert (len(x_train), len(x_val)) == (24, 6)
    mixed = ds.mixed([1, 2, 3], "train")
    assert mixed.task_id.bincount().tolist() == [0, 24, 24, 24]


def test_a_list_means_tasks_one_to_n():
    ds = CombinedMTLDataset([FakeSource("A", (1, 8, 8), 3), FakeSource("B", (1, 8, 8), 5)])
    assert ds.task_ids == [1, 2] and ds.num_classes == {1: 3, 2: 5}


def test_mismatched_shapes_without_unifying_config_are_a_clear_error():
    sources = {1: FakeSource("MNIST", (1, 28, 28), 10), 2: FakeSource("CIFAR10", (3, 32, 32), 10)}
    with pytest.raises(ConfigError) as info:
        CombinedMTLDataset(sources)
    message = str(info.value)
    assert "datasets have different input shapes: task 1 (MNIST) 1x28x28, task 2 (CIFAR10) 3x32x32" in message
    assert "resize" in message and "repeat_channels" in message and "\n" not in message
    with pytest.raises(ConfigError, match="different input shapes"):
        CombinedMTLDataset(sources, resize=[32, 32])  # channels still differ


def test_resize_and_channel_repetition_unify_mnist_and_cifar_shapes():
    mnist = FakeSource("MNIST", (1, 28, 28), 10, n=6)
    cifar = FakeSource("CIFAR10", (3, 32, 32), 10, n=6, seed=3)
    ds = CombinedMTLDataset({1: mnist, 2: cifar}, validation_percentage=0.0, resize=[32, 32], repeat_channels=3)
    assert ds.input_shape == (3, 32, 32)
    x1, _ = ds.tensors(1, "train")
    assert x1.shape == (6, 3, 32, 32) and x1.dtype == torch.float32
    expected = F.interpolate(mnist.load().train_x, size=(32, 32), mode="bilinear", align_corners=False)
    for c in range(3):
        assert torch.equal(x1[:, c : c + 1], expected)
    # A source already at the target shape is untouched.
    assert torch.equal(ds.tensors(2, "train")[0], cifar.load().train_x)


def test_channel_repetition_cannot_turn_three_channels_into_four():
    with pytest.raises(ConfigError, match=r"task 1 \(CIFAR10\) has 3 channels, which cannot be repeated to 4"):
        CombinedMTLDataset({1: FakeSource("CIFAR10", (3, 32, 32), 10)}, repeat_channels=4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"resize": [32]}, "resize must be"),
        ({"resize": [0, 4]}, "resize must be"),
        ({"repeat_channels": 0}, "repeat_channels must be a positive integer"),
        ({"validation_percentage": -0.1}, "validation_percentage must be in"),
    ],
)
def test_bad_unifying_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CombinedMTLDataset([FakeSource("A", (1, 8, 8), 3)], **kwargs)


def test_bad_datasets_argument():
    with pytest.raises(ConfigError, match="task ids must be integers >= 1, got 0"):
        CombinedMTLDataset({0: FakeSource("A", (1, 8, 8), 3)})
    with pytest.raises(ConfigError, match="task 1 must be an image source"):
        CombinedMTLDataset({1: "data/MNIST"})
    with pytest.raises(ConfigError, match="datasets is empty"):
        CombinedMTLDataset([])


def test_split_datasets_resize_too():
    ds = SplitDigits({1: [0, 1]}, resize=[16, 16], repeat_channels=3)
    assert ds.input_shape == (3, 16, 16)
    x, _ = ds.tensors(1, "test")
    assert x.shape[1:] == (3, 16, 16)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_apply_transforms_handles_empty_batches():
    empty = torch.empty(0, 1, 8, 8)
    assert apply_transforms(empty, (16, 16), 3).shape == (0, 3, 16, 16)


def test_digits_source_combines_with_itself_as_two_tasks():
    ds = CombinedMTLDataset({1: Digits(), 2: Digits(test_percentage=0.3)})
    assert len(ds.tensors(2, "test")[1]) > len(ds.tensors(1, "test")[1])
