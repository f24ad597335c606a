"""MTL algorithms. Each is an :class:`MTLAlgorithm` subclass in a module of its own,
re-exported here; ``BUILTIN_ALGORITHMS`` lists them for the CLI and the catalogue."""

from mtlcli.algorithms.base import MTLAlgorithm, NonFiniteLossError, StepOutput
from mtlcli.algorithms.joint_learning import JointLearning
from mtlcli.algorithms.dwa import DWA
from mtlcli.algorithms.ew import EW
from mtlcli.algorithms.famo import FAMO
from mtlcli.algorithms.gls import GLS
from mtlcli.algorithms.rlw import RLW
from mtlcli.algorithms.stch import STCH
from mtlcli.algorithms.uw import UW
from mtlcli.algorithms.gradient_method import GradientMethod, NonFiniteGradientError
from mtlcli.algorithms.mgda import MGDA
from mtlcli.algorithms.upgrad import UPGrad
from mtlcli.algorithms.dualproj import DualProj
from mtlcli.algorithms.gradnorm import GradNorm
from mtlcli.algorithms.excess_mtl import ExcessMTL
from mtlcli.algorithms.db_mtl import DBMTL
from mtlcli.algorithms.pcgrad import PCGrad
from mtlcli.algorithms.gradvac import GradVac
from mtlcli.algorithms.cagrad import CAGrad
from mtlcli.algorithms.imtl import IMTL
from mtlcli.algorithms.nash_mtl import NashMTL
from mtlcli.algorithms.aligned_mtl import AlignedMTL
from mtlcli.algorithms.fairgrad import FairGrad
from mtlcli.algorithms.config_method import ConFIG
from mtlcli.algorithms.graddrop import GradDrop
from mtlcli.algorithms.moco import MoCo

BUILTIN_ALGORITHMS = [
    "JointLearning",
    "EW",
    "UW",
    "DWA",
    "RLW",
    "GLS",
    "STCH",
    "FAMO",
    # gradient methods (per-task gradients from mtlcli.algorithms.jacobian)
    "GradNorm",
    "ExcessMTL",
    "DBMTL",
    "MGDA",
    "PCGrad",
    "GradVac",
    "CAGrad",
    "IMTL",
    "NashMTL",
    "AlignedMTL",
    "UPGrad",
    "DualProj",
    "GradDrop",
    "FairGrad",
    "ConFIG",
    "MoCo",
]

__all__ = ["MTLAlgorithm", "NonFiniteLossError", "StepOutput", "GradientMethod", "NonFiniteGradientError",
           *BUILTIN_ALGORITHMS]
