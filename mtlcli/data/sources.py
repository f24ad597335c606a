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

import torch

from mtlcli.data.splits import TEST_SPLIT_SEED, check_fraction, stratified_test_split


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
