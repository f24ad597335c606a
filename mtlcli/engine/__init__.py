"""The training engine: loop, evaluation, checkpoints and metric files. Knows nothing about YAML."""

from mtlcli.engine.trainer import RunData, TaskData, Trainer, TrainingInterrupted

__all__ = ["RunData", "TaskData", "Trainer", "TrainingInterrupted"]
