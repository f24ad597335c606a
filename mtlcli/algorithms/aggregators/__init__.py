"""Gradient aggregators: pure functions from the per-task gradient matrix G (or
its Gramian G Gᵀ) to one update direction. One private module per method."""

from mtlcli.algorithms.aggregators._base import (
    Aggregator,
    NonFiniteGradientError,
    SolverError,
    UndefinedAggregationError,
)
from mtlcli.algorithms.aggregators._aligned_mtl import AlignedMTL
from mtlcli.algorithms.aggregators._cagrad import CAGrad
from mtlcli.algorithms.aggregators._config import ConFIG
from mtlcli.algorithms.aggregators._dualproj import DualProj
from mtlcli.algorithms.aggregators._fairgrad import FairGrad
from mtlcli.algorithms.aggregators._graddrop import GradDrop
from mtlcli.algorithms.aggregators._gradvac import GradVac
from mtlcli.algorithms.aggregators._imtl import IMTLG
from mtlcli.algorithms.aggregators._mean import Mean
from mtlcli.algorithms.aggregators._mgda import MGDA
from mtlcli.algorithms.aggregators._moco import MoCo
from mtlcli.algorithms.aggregators._nash_mtl import NashMTL
from mtlcli.algorithms.aggregators._pcgrad import PCGrad
from mtlcli.algorithms.aggregators._sum import Sum
from mtlcli.algorithms.aggregators._upgrad import UPGrad

__all__ = [
    "Aggregator",
    "NonFiniteGradientError",
    "SolverError",
    "UndefinedAggregationError",
    "Mean",
    "Sum",
    "MGDA",
    "UPGrad",
    "DualProj",
    "PCGrad",
    "GradVac",
    "CAGrad",
    "IMTLG",
    "NashMTL",
    "AlignedMTL",
    "FairGrad",
    "ConFIG",
    "GradDrop",
    "MoCo",
]
