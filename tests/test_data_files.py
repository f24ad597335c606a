"""Readers for files on disk: IDX (MNIST family) and CIFAR pickle batches, on small
files the tests write themselves, in the folder layouts torchvision users have."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mtlcli.data import (
    CIFAR10,
    CIFAR100,
    EMNIST,
    KMNIST,
    MNIST,
    FashionMNIST,
    MTLDatasetFromCL,
    PermutedMNIST,
    SplitCIFAR10,
    SplitCIFAR100,
    SplitEMNIST,
    SplitMNIST,
)
from mtlcli.data.cifar import read_cifar_batch
from mtlcli.data.idx import read_idx
from mtlcli.errors import ConfigError, MtlcliError

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}
MNIST_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as IDX, written from the format description (big-endian)."""
    header = struct.pack(">BBBB", 0, 0, IDX_CODES[array.dtype.type], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, content: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(content)
    else:
        path.write_bytes(content)
    return path


def fake_mnist(folder: Path, n_train: int = 40, n_test: int = 20, num_classes: int = 10, gz: bool = False,
               prefix: str = "", label_offset: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
    """Write four MNIST-style IDX files with random 28x28 images; return the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": (np.arange(n_train) % num_classes + label_offset).astype(np.uint8),
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": (np.arange(n_test) % num_classes + label_offset).astype(np.uint8),
    }
    for name, key in zip(MNIST_NAMES, ["train_x", "train_y", "test_x", "test_y"]):
        write(folder / f"{prefix}{name}", idx_bytes(arrays[key]), gz=gz)
    return arrays


# -- the IDX reader ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_round_trips_every_type_raw_and_gz(tmp_path, dtype, gz):
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    if dtype == np.uint8:
        array = np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    path = write(tmp_path / "a-idx3-ubyte", idx_bytes(array), gz=gz)
    read = read_idx(path)
    assert read.dtype == np.dtype(dtype) and read.shape == (2, 3, 5)
    np.testing.assert_array_equal(read, array)


def test_idx_reader_rejects_a_wrong_magic_number(tmp_path):
    content = bytearray(idx_bytes(np.zeros((2, 2), np.uint8)))
    content[0] = 0x1F  # not two leading zero bytes
    path = write(tmp_path / "bad", bytes(content))
    with pytest.raises(MtlcliError, match=r"is not an IDX file: bad magic number 0x1f000802"):
        read_idx(path)
    content[0], content[2] = 0, 0x07  # unknown type code
    with pytest.raises(MtlcliError, match="bad magic number 0x00000702"):
        read_idx(write(tmp_path / "bad2", bytes(content)))


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_rejects_truncated_and_padded_files(tmp_path, gz):
    content = idx_bytes(np.ones((3, 4, 4), np.uint8))
    with pytest.raises(MtlcliError, match=r"is truncated: its header announces 3x4x4 .* \(48 bytes\) but 40 bytes follow"):
        read_idx(write(tmp_path / "short", content[:-8], gz=gz))
    with pytest.raises(MtlcliError, match="is truncated: its header announces 3 dimensions"):
        read_idx(write(tmp_path / "header", content[:9], gz=gz))
    with pytest.raises(MtlcliError, match=r"corrupt \(trailing bytes\)"):
        read_idx(write(tmp_path / "long", content + b"\0", gz=gz))


def test_idx_reader_reports_a_corrupt_gzip_stream(tmp_path):
    good = write(tmp_path / "x-idx1-ubyte", idx_bytes(np.zeros(50, np.uint8)), gz=True)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(good.read_bytes()[:-12])  # cut the stream and its trailer
    with pytest.raises(MtlcliError, match=f"cannot read {broken}"):
        read_idx(broken)
    not_gzip = tmp_path / "plain.gz"
    not_gzip.write_bytes(b"this is not gzip at all")
    with pytest.raises(MtlcliError, match=f"cannot read {not_gzip}"):
        read_idx(not_gzip)


# -- MNIST family sources ---------------------------------------------------------------


@pytest.mark.parametrize(
    "source_cls, layout",
    [
        (MNIST, "."),
        (MNIST, "raw"),
        (MNIST, "MNIST/raw"),  # torchvision's layout under CLArena's root: data/MNIST
        (FashionMNIST, "FashionMNIST/raw"),
        (KMNIST, "KMNIST"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_family_reads_torchvision_layouts(tmp_path, source_cls, layout, gz):
    arrays = fake_mnist(tmp_path / layout, gz=gz)
    data = source_cls(str(tmp_path)).load()
    assert data.train_x.shape == (40, 1, 28, 28) and data.train_x.dtype == torch.float32
    assert torch.equal(data.train_x[:, 0], torch.from_numpy(arrays["train_x"]).float() / 255)
    assert torch.equal(data.test_y, torch.from_numpy(arrays["test_y"]).long())
    assert data.test_x.shape == (20, 1, 28, 28)


def test_missing_mnist_files_name_the_files_and_the_folders(tmp_path):
    root = tmp_path / "MNIST"
    with pytest.raises(MtlcliError) as info:
        MNIST(str(root)).load()
    message = str(info.value)
    assert "\n" not in message
    assert f"MNIST files not found ({root} does not exist)" in message
    for name in MNIST_NAMES:
        assert name in message
    assert "(raw or .gz)" in message
    for folder in (root, root / "raw", root / "MNIST", root / "MNIST" / "raw"):
        assert str(folder) in message


def test_a_partly_present_mnist_names_only_the_missing_files(tmp_path):
    fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(MtlcliError, match=r"MNIST files not found: expected t10k-labels-idx1-ubyte \(raw or .gz\)"):
        MNIST(str(tmp_path)).load()


def test_mnist_files_with_the_wrong_content_are_refused(tmp_path):
    fake_mnist(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((40, 32, 32), np.uint8)))
    with pytest.raises(MtlcliError, match=r"does not hold MNIST images: expected uint8 N x 28 x 28, got uint8 40x32x32"):
        MNIST(str(tmp_path)).load()
    fake_mnist(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(39, np.uint8)))
    with pytest.raises(MtlcliError, match="40 images but labels of shape"):
        MNIST(str(tmp_path)).load()
    fake_mnist(tmp_path, num_classes=11)
    with pytest.raises(MtlcliError, match=r"has labels 0..10, outside the expected 0..9"):
        MNIST(str(tmp_path)).load()


def test_emnist_reads_split_files_upright_and_shifts_letters_to_zero(tmp_path):
    arrays = fake_mnist(tmp_path / "EMNIST" / "raw", prefix="emnist-letters-", num_classes=26, label_offset=1, gz=True)
    source = EMNIST(str(tmp_path), split="letters")
    assert source.num_classes == 26
    data = source.load()
    # The files store images transposed; the source returns them upright.
    assert torch.equal(data.train_x[:, 0], torch.from_numpy(arrays["train_x"]).float().transpose(1, 2) / 255)
    assert torch.equal(data.train_y, torch.from_numpy(arrays["train_y"]).long() - 1)
    assert int(data.train_y.min()) == 0 and int(data.train_y.max()) == 25
    with pytest.raises(MtlcliError, match="emnist-balanced-train-images-idx3-ubyte"):
        EMNIST(str(tmp_path), split="balanced").load()
    with pytest.raises(ConfigError, match="unknown EMNIST split 'lettres'"):
        EMNIST(str(tmp_path), split="lettres")


def test_split_mnist_from_the_clarena_layout(tmp_path):
    root = tmp_path / "data" / "MNIST"
    arrays = fake_mnist(root / "MNIST" / "raw", n_train=100, gz=True)
    ds = MTLDatasetFromCL(SplitMNIST(str(root), {1: [0, 1], 2: [2, 3, 4]}, validation_percentage=0.1), batch_size=8)
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == {1: 2, 2: 3}
    ds.setup()
    x, y = ds.tensors(2, "train")
    x_val, _ = ds.tensors(2, "val")
    assert len(x) + len(x_val) == 30 and len(x_val) == 3
    assert set(y.tolist()) == {0, 1, 2}
    _, y_test = ds.tensors(2, "test")
    expected = torch.from_numpy(arrays["test_y"]).long()
    assert torch.equal(y_test, expected[(expected >= 2) & (expected <= 4)] - 2)


def test_file_errors_surface_at_setup_not_construction(tmp_path):
    ds = MTLDatasetFromCL(PermutedMNIST(str(tmp_path / "nowhere"), num_tasks=3))
    assert ds.input_shape == (1, 28, 28) and ds.task_ids == [1, 2, 3]
    with pytest.raises(MtlcliError, match="MNIST files not found"):
        ds.setup()


def test_split_emnist_checks_classes_against_the_split():
    with pytest.raises(ConfigError, match=r"class 26, which EMNIST does not have \(classes 0..25\)"):
        SplitEMNIST("data/EMNIST", {1: [0, 26]}, split="letters")


# -- CIFAR pickle batches ---------------------------------------------------------------


def write_cifar_batch(path: Path, n: int, num_classes: int, label_key: bytes, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, num_classes, n)]
    batch = {b"batch_label": b"testing batch", label_key: labels, b"data": data, b"filenames": [b"x.png"] * n}
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [v // 5 for v in labels]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return data, labels


def fake_cifar10(folder: Path, n: int = 6) -> dict[str, tuple[np.ndarray, list[int]]]:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return {name: write_cifar_batch(folder / name, n, 10, b"labels", seed=i) for i, name in enumerate(names)}


def test_cifar_batch_reader_returns_channel_first_images(tmp_path):
    data, labels = write_cifar_batch(tmp_path / "data_batch_1", 4, 10, b"labels", seed=1)
    images, read_labels = read_cifar_batch(tmp_path / "data_batch_1")
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.uint8
    # CIFAR rows are 1024 red, then 1024 green, then 1024 blue values, row-major.
    np.testing.assert_array_equal(images[2, 1, 3, 5], data[2, 1024 + 3 * 32 + 5])
    assert read_labels.tolist() == labels


def test_cifar10_source_concatenates_the_five_training_batches(tmp_path):
    batches = fake_cifar10(tmp_path / "cifar-10-batches-py")
    data = CIFAR10(str(tmp_path)).load()
    assert data.train_x.shape == (30, 3, 32, 32) and data.test_x.shape == (6, 3, 32, 32)
    expected = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    assert torch.equal(data.train_x, torch.from_numpy(expected).float() / 255)
    assert data.test_y.tolist() == batches["test_batch"][1]
    # The batches folder itself works as root too.
    assert torch.equal(CIFAR10(str(tmp_path / "cifar-10-batches-py")).load().test_x, data.test_x)


def test_cifar100_uses_fine_labels(tmp_path):
    _, train_labels = write_cifar_batch(tmp_path / "cifar-100-python" / "train", 8, 100, b"fine_labels", seed=3)
    write_cifar_batch(tmp_path / "cifar-100-python" / "test", 4, 100, b"fine_labels", seed=4)
    ds = SplitCIFAR100(str(tmp_path), {t: list(range(10 * (t - 1), 10 * t)) for t in range(1, 11)})
    assert ds.input_shape == (3, 32, 32) and ds.num_classes[10] == 10
    assert CIFAR100(str(tmp_path)).load().train_y.tolist() == train_labels


def test_missing_cifar_files_name_the_files_and_the_folders(tmp_path):
    with pytest.raises(MtlcliError) as info:
        CIFAR10(str(tmp_path)).load()
    message = str(info.value)
    assert message.startswith("CIFAR10 files not found: expected data_batch_1, data_batch_2")
    assert "test_batch" in message and str(tmp_path / "cifar-10-batches-py") in message
    with pytest.raises(MtlcliError, match=r"CIFAR100 files not found .*expected train, test in one of: .*cifar-100-python"):
        CIFAR100(str(tmp_path / "absent")).load()


def test_corrupt_and_malicious_cifar_pickles_are_refused(tmp_path):
    fake_cifar10(tmp_path)
    test_batch = tmp_path / "test_batch"
    test_batch.write_bytes(test_batch.read_bytes()[:100])
    with pytest.raises(MtlcliError, match="test_batch is not a readable CIFAR batch"):
        CIFAR10(str(tmp_path)).load()
    # A pickle that would call a function is refused, not executed.
    (tmp_path / "test_batch").write_bytes(pickle.dumps(Path("/tmp"), protocol=2))
    with pytest.raises(MtlcliError, match="refusing to load pathlib"):
        CIFAR10(str(tmp_path)).load()
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(MtlcliError, match=r"b'data' must be uint8 of shape \(N, 3072\)"):
        CIFAR10(str(tmp_path)).load()


def test_split_cifar10_tasks(tmp_path):
    fake_cifar10(tmp_path / "cifar-10-batches-py", n=20)
    ds = SplitCIFAR10(str(tmp_path), {1: [0, 1, 2, 3, 4], 2: [5, 6, 7, 8, 9]}, validation_percentage=0.2)
    x, y = ds.tensors(1, "train")
    x_val, _ = ds.tensors(1, "val")
    n_task1 = int((CIFAR10(str(tmp_path)).load().train_y < 5).sum())
    assert len(x) + len(x_val) == n_task1 and len(x_val) == round(n_task1 * 0.2)
    assert x.shape[1:] == (3, 32, 32) and set(y.tolist()) <= set(range(5))
