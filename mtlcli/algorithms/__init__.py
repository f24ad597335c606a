"""MTL algorithms. Each is an :class:`MTLAlgorithm` subclass in a module of its own,
re-exported here; ``BUILTIN_ALGORITHMS`` lists them for the CLI and the catalogue."""

from mtlcli.algorithms.base import MTLAlgorithm, NonFiniteLossError, StepOutput
from mtlcli.algorithms.joint_learning import JointLearning

BUILTIN_ALGORITHMS = [
    "JointLearning",
]

__all__ = ["MTLAlgorithm", "NonFiniteLossError", "StepOutput", *BUILTIN_ALGORITHMS]
