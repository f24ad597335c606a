"""Task-labelled datasets held in memory, and the mixed-task batch sampler.

Configs name these classes by their re-exported path (``mtlcli.data.SplitDigits``,
``mtlcli.data.MTLDatasetFromCL``, ...).
"""

from mtlcli.data.base import MixedTensors, MTLDataset, TaskDataset
from mtlcli.data.cl import (
    CLDataset,
    PermutedDataset,
    PermutedDigits,
    SplitDataset,
    SplitDigits,
)
from mtlcli.data.mtl import MTLDatasetFromCL
from mtlcli.data.sampler import MixedBatchSampler
from mtlcli.data.sources import Digits, ImageSource, SourceData

__all__ = [
    "CLDataset",
    "Digits",
    "ImageSource",
    "MixedBatchSampler",
    "MixedTensors",
    "MTLDataset",
    "MTLDatasetFromCL",
    "PermutedDataset",
    "PermutedDigits",
    "SourceData",
    "SplitDataset",
    "SplitDigits",
    "TaskDataset",
]
