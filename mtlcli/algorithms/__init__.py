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

BUILTIN_ALGORITHMS = [
    "JointLearning",
    "EW",
    "UW",
    "DWA",
    "RLW",
    "GLS",
    "STCH",
    "FAMO",
]

__all__ = ["MTLAlgorithm", "NonFiniteLossError", "StepOutput", *BUILTIN_ALGORITHMS]
