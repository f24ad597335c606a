"""Task-labelled datasets held in memory, and the mixed-task batch sampler.

Configs name these classes by their re-exported path (``mtlcli.data.SplitDigits``,
``mtlcli.data.MTLDatasetFromCL``, ...):

- sources (one labelled dataset each): ``Digits``, ``MNIST``, ``FashionMNIST``,
  ``KMNIST``, ``EMNIST``, ``CIFAR10``, ``CIFAR100``;
- continual-learning style task datasets: ``SplitDataset`` / ``Split<Source>``
  (class split) and ``PermutedDataset`` / ``Permuted<Source>`` (pixel permutation);
- MTL datasets the trainer receives: ``MTLDatasetFromCL``, ``CombinedMTLDataset``.
"""

from mtlcli.data.base import MixedTensors, MTLDataset, TaskDataset
from mtlcli.data.cl import (
    CLDataset,
    PermutedDataset,
    PermutedDigits,
    PermutedEMNIST,
    PermutedFashionMNIST,
    PermutedKMNIST,
    PermutedMNIST,
    SplitCIFAR10,
    SplitCIFAR100,
    SplitDataset,
    SplitDigits,
    SplitEMNIST,
    SplitFashionMNIST,
    SplitKMNIST,
    SplitMNIST,
)
from mtlcli.data.mtl import CombinedMTLDataset, MTLDatasetFromCL
from mtlcli.data.sampler import MixedBatchSampler
from mtlcli.data.sources import (
    CIFAR10,
    CIFAR100,
    EMNIST,
    MNIST,
    Digits,
    FashionMNIST,
    ImageSource,
    KMNIST,
    SourceData,
)

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "CLDataset",
    "CombinedMTLDataset",
    "Digits",
    "EMNIST",
    "FashionMNIST",
    "ImageSource",
    "KMNIST",
    "MixedBatchSampler",
    "MixedTensors",
    "MNIST",
    "MTLDataset",
    "MTLDatasetFromCL",
    "PermutedDataset",
    "PermutedDigits",
    "PermutedEMNIST",
    "PermutedFashionMNIST",
    "PermutedKMNIST",
    "PermutedMNIST",
    "SourceData",
    "SplitCIFAR10",
    "SplitCIFAR100",
    "SplitDataset",
    "SplitDigits",
    "SplitEMNIST",
    "SplitFashionMNIST",
    "SplitKMNIST",
    "SplitMNIST",
    "TaskDataset",
]
