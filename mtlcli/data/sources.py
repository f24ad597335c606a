"""Image classification sources: one labelled dataset with a train and a test part.

A source knows its name, class count and image shape without reading anything,
and reads its files once, on :meth:`ImageSource.load`. Every source returns
images as float32 ``(N, C, H, W)`` scaled to [0, 1] (raw pixel value divided by
its maximum: 16 for the UCI digits, 255 otherwise) and labels as long ``0..K-1``.
No mean/std normalisation is applied: the scale is the same for every source,
which is what combining sources needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mtlcli.data.splits import TEST_SPLIT_SEED, check_fraction, stratified_test_split
from mtlcli.errors import ConfigError, MtlcliError


@dataclass(frozen=True)
class SourceData:
    """A loaded source: images float32 (N, C, H, W) in [0, 1], labels long (N,)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


class ImageSource:
    """Base class: subclasses set ``name``, ``num_classes``, ``input_shape`` and implement ``_read``."""

    name: str = "source"
    num_classes: int = 0
    input_shape: tuple[int, int, int] = (0, 0, 0)

    _data: SourceData | None = None

    def load(self) -> SourceData:
        """Read the source (once; later calls return the same tensors)."""
        if self._data is None:
            self._data = self._read()
        return self._data

    def _read(self) -> SourceData:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Digits(ImageSource):
    """The UCI handwritten digits that scikit-learn ships (1797 images, 8x8, classes 0-9).

    No download and no files. The set has no official test split, so a fixed
    stratified ``test_percentage`` of each class (seeded with
    ``splits.TEST_SPLIT_SEED``, independent of any training seed) is the test set.

    Args:
        test_percentage: fraction of each class held out as the test set, in (0, 1).
    """

    name = "Digits"
    num_classes = 10
    input_shape = (1, 8, 8)

    def __init__(self, test_percentage: float = 0.2):
        self.test_percentage = check_fraction("test_percentage", test_percentage, allow_zero=False)

    def _read(self) -> SourceData:
        from sklearn.datasets import load_digits  # heavy import, only when data is needed

        bunch = load_digits()
        x = torch.as_tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
        y = torch.as_tensor(bunch.target, dtype=torch.long)
        train, test = stratified_test_split(y, self.test_percentage, TEST_SPLIT_SEED)
        return SourceData(x[train], y[train], x[test], y[test])

    def __repr__(self) -> str:
        return f"Digits(test_percentage={self.test_percentage})"


# -- files on disk ----------------------------------------------------------------------


def _locate(dataset: str, root: Path, folders: list[Path], names: list[str], gz_ok: bool) -> dict[str, Path]:
    """Find each of ``names`` (or ``name.gz`` when ``gz_ok``) in the first of ``folders`` that has it."""
    found: dict[str, Path] = {}
    for name in names:
        for folder in folders:
            for candidate in (folder / name, folder / f"{name}.gz") if gz_ok else (folder / name,):
                if candidate.is_file():
                    found[name] = candidate
                    break
            if name in found:
                break
    missing = [n for n in names if n not in found]
    if missing:
        suffix = " (raw or .gz)" if gz_ok else ""
        where = ", ".join(str(f) for f in folders)
        absent = "" if root.is_dir() else f" ({root} does not exist)"
        raise MtlcliError(
            f"{dataset} files not found{absent}: expected {', '.join(missing)}{suffix} in one of: {where}"
        )
    return found


def _images_to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1]."""
    return torch.from_numpy(images).to(torch.float32).div_(255.0)


def _check_labels(labels: np.ndarray, num_classes: int, path: Path) -> torch.Tensor:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise MtlcliError(
            f"{path} has labels {int(labels.min())}..{int(labels.max())}, outside the expected 0..{num_classes - 1}"
        )
    return torch.from_numpy(labels.astype(np.int64))


class IDXSource(ImageSource):
    """A dataset stored as four IDX files (train/test images and labels), MNIST-style.

    Files are looked up in ``root``, ``root/raw``, ``root/<Name>`` and ``root/<Name>/raw``
    (torchvision's layout when ``root`` is its download folder), raw or gzip-compressed.
    """

    folder_name = "MNIST"
    file_prefix = ""
    label_offset = 0       # subtracted from the stored labels
    transposed = False     # images stored with height and width swapped
    input_shape = (1, 28, 28)

    def __init__(self, root: str):
        self.root = str(root)

    def file_names(self) -> list[str]:
        """Train images, train labels, test images, test labels."""
        p = self.file_prefix
        return [f"{p}train-images-idx3-ubyte", f"{p}train-labels-idx1-ubyte",
                f"{p}t10k-images-idx3-ubyte", f"{p}t10k-labels-idx1-ubyte"]

    def search_folders(self) -> list[Path]:
        root = Path(self.root).expanduser()
        return [root, root / "raw", root / self.folder_name, root / self.folder_name / "raw"]

    def _read(self) -> SourceData:
        from mtlcli.data.idx import read_idx

        names = self.file_names()
        paths = _locate(self.name, Path(self.root).expanduser(), self.search_folders(), names, gz_ok=True)
        parts = []
        for images_name, labels_name in ((names[0], names[1]), (names[2], names[3])):
            images, labels = read_idx(paths[images_name]), read_idx(paths[labels_name])
            _, h, w = self.input_shape
            if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (h, w):
                raise MtlcliError(
                    f"{paths[images_name]} does not hold {self.name} images: expected uint8 N x {h} x {w}, "
                    f"got {images.dtype} {'x'.join(map(str, images.shape))}"
                )
            if labels.ndim != 1 or len(labels) != len(images):
                raise MtlcliError(
                    f"{paths[labels_name]} does not match {paths[images_name]}: "
                    f"{len(images)} images but labels of shape {labels.shape}"
                )
            if self.transposed:
                images = np.ascontiguousarray(images.transpose(0, 2, 1))
            y = _check_labels(labels.astype(np.int64) - self.label_offset, self.num_classes, paths[labels_name])
            parts.append((_images_to_float(images).unsqueeze(1), y))
        (train_x, train_y), (test_x, test_y) = parts
        return SourceData(train_x, train_y, test_x, test_y)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={self.root!r})"


class MNIST(IDXSource):
    """MNIST handwritten digits (28x28, 10 classes) from its IDX files.

    Args:
        root: folder holding ``train-images-idx3-ubyte`` etc. (raw or ``.gz``), directly or
            in ``raw/``, ``MNIST/`` or ``MNIST/raw/`` below it (torchvision's layout).
    """

    name = "MNIST"
    folder_name = "MNIST"
    num_classes = 10

    def __init__(self, root: str):
        super().__init__(root)


class FashionMNIST(IDXSource):
    """Fashion-MNIST clothing images (28x28, 10 classes) from its IDX files.

    Args:
        root: folder holding ``train-images-idx3-ubyte`` etc. (raw or ``.gz``), directly or
            in ``raw/``, ``FashionMNIST/`` or ``FashionMNIST/raw/`` below it (torchvision's layout).
    """

    name = "FashionMNIST"
    folder_name = "FashionMNIST"
    num_classes = 10

    def __init__(self, root: str):
        super().__init__(root)


class KMNIST(IDXSource):
    """Kuzushiji-MNIST cursive Japanese characters (28x28, 10 classes) from its IDX files.

    Args:
        root: folder holding ``train-images-idx3-ubyte`` etc. (raw or ``.gz``), directly or
            in ``raw/``, ``KMNIST/`` or ``KMNIST/raw/`` below it (torchvision's layout).
    """

    name = "KMNIST"
    folder_name = "KMNIST"
    num_classes = 10

    def __init__(self, root: str):
        super().__init__(root)


EMNIST_SPLITS = {"byclass": 62, "bymerge": 47, "balanced": 47, "letters": 26, "digits": 10, "mnist": 10}


class EMNIST(IDXSource):
    """EMNIST handwritten characters (28x28) from the ``emnist-<split>-*`` IDX files.

    The files store each image transposed; images are returned upright (like MNIST's).
    The ``letters`` split stores labels 1..26; they are shifted to 0..25 (0 is "a").

    Args:
        root: folder holding ``emnist-<split>-train-images-idx3-ubyte`` etc. (raw or ``.gz``),
            directly or in ``raw/``, ``gzip/``, ``EMNIST/raw/`` or ``EMNIST/raw/gzip/`` below it.
        split: one of ``byclass`` (62 classes), ``bymerge`` (47), ``balanced`` (47),
            ``letters`` (26), ``digits`` (10), ``mnist`` (10).
    """

    name = "EMNIST"
    folder_name = "EMNIST"
    transposed = True

    def __init__(self, root: str, split: str = "balanced"):
        if split not in EMNIST_SPLITS:
            raise ConfigError(f"unknown EMNIST split {split!r}", hint=f"choose one of {', '.join(EMNIST_SPLITS)}")
        super().__init__(root)
        self.split = split
        self.num_classes = EMNIST_SPLITS[split]
        self.file_prefix = f"emnist-{split}-"
        self.label_offset = 1 if split == "letters" else 0

    def search_folders(self) -> list[Path]:
        root = Path(self.root).expanduser()
        return [*super().search_folders(), root / "gzip", root / self.folder_name / "raw" / "gzip"]

    def __repr__(self) -> str:
        return f"EMNIST(root={self.root!r}, split={self.split!r})"


class CIFARSource(ImageSource):
    """A CIFAR "python version" dataset: pickled batches in their extracted archive folder."""

    input_shape = (3, 32, 32)
    archive_folder = "cifar-10-batches-py"
    train_files: list[str] = []
    test_files: list[str] = []
    label_key = b"labels"

    def __init__(self, root: str):
        self.root = str(root)

    def search_folders(self) -> list[Path]:
        root = Path(self.root).expanduser()
        return [root / self.archive_folder, root]

    def _read(self) -> SourceData:
        from mtlcli.data.cifar import read_cifar_batch

        names = [*self.train_files, *self.test_files]
        paths = _locate(self.name, Path(self.root).expanduser(), self.search_folders(), names, gz_ok=False)
        parts = []
        for files in (self.train_files, self.test_files):
            batches = [read_cifar_batch(paths[name], self.label_key) for name in files]
            images = np.concatenate([b[0] for b in batches])
            labels = _check_labels(np.concatenate([b[1] for b in batches]), self.num_classes, paths[files[0]])
            parts.append((_images_to_float(images), labels))
        (train_x, train_y), (test_x, test_y) = parts
        return SourceData(train_x, train_y, test_x, test_y)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={self.root!r})"


class CIFAR10(CIFARSource):
    """CIFAR-10 (32x32 colour, 10 classes) from the python pickle batches.

    Args:
        root: folder holding ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
            ``test_batch``), or that folder itself.
    """

    name = "CIFAR10"
    num_classes = 10
    archive_folder = "cifar-10-batches-py"
    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    test_files = ["test_batch"]
    label_key = b"labels"

    def __init__(self, root: str):
        super().__init__(root)


class CIFAR100(CIFARSource):
    """CIFAR-100 (32x32 colour, 100 fine classes) from the python pickle files.

    Args:
        root: folder holding ``cifar-100-python/`` (``train``, ``test``), or that folder itself.
    """

    name = "CIFAR100"
    num_classes = 100
    archive_folder = "cifar-100-python"
    train_files = ["train"]
    test_files = ["test"]
    label_key = b"fine_labels"

    def __init__(self, root: str):
        super().__init__(root)
