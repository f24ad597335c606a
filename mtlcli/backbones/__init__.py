"""Shared backbones. Each maps a batch of inputs to ``(B, output_dim)`` features and
exposes ``output_dim`` so the trainer can size the heads."""

from mtlcli.backbones.mlp import MLP

__all__ = ["MLP"]
