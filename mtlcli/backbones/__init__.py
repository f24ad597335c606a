"""Shared backbones. Each maps a batch of inputs to ``(B, output_dim)`` features and
exposes ``output_dim`` so the trainer can size the heads."""

from mtlcli.backbones.cnn import CNN
from mtlcli.backbones.mlp import MLP
from mtlcli.backbones.resnet import ResNet18

__all__ = ["MLP", "CNN", "ResNet18"]
