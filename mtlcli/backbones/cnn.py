"""A small convolutional backbone for digits, MNIST-family and CIFAR-sized images."""

from __future__ import annotations

import torch
from torch import nn

from mtlcli.backbones.init import init_weights
from mtlcli.backbones.mlp import _ACTIVATIONS


class CNN(nn.Module):
    """Convolutional backbone: per entry of ``channels`` a block
    ``Conv3x3 (padding 1) -> [BatchNorm2d] -> activation -> MaxPool 2x2``, then global
    average pooling, and a final ``Linear`` to ``output_dim`` followed by the
    activation (and dropout, if set).

    Each block halves height and width (rounding up, so a 1x1 map stays 1x1 and
    any input size works, 8x8 digits included); global average pooling makes the
    representation independent of the input size. Convolutions have a bias only
    without batch normalisation. Initialisation (see :mod:`mtlcli.backbones.init`):
    convolutions Kaiming-normal (fan-out), the final Linear Kaiming-normal
    (fan-in), biases 0, BatchNorm weight 1 and bias 0.

    Args:
        input_channels: channels of the input images (1 for digits and MNIST-family, 3 for CIFAR).
        channels: output channels of the convolutional blocks, in order (e.g. [32, 64]).
        output_dim: size of the shared representation the task heads read.
        activation: one of ``relu``, ``tanh``, ``gelu``, ``sigmoid``, ``elu``.
        batch_normalization: add ``BatchNorm2d`` after each convolution.
        dropout: dropout probability after the final activation (0 disables it).
    """

    def __init__(
        self,
        input_channels: int,
        channels: list[int],
        output_dim: int,
        activation: str = "relu",
        batch_normalization: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}")
        if not channels:
            raise ValueError("CNN needs at least one convolutional block (channels is empty)")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_channels = int(input_channels)
        self.output_dim = int(output_dim)
        layers: list[nn.Module] = []
        widths = [self.input_channels, *[int(c) for c in channels]]
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            layers.append(nn.Conv2d(fan_in, fan_out, kernel_size=3, padding=1, bias=not batch_normalization))
            if batch_normalization:
                layers.append(nn.BatchNorm2d(fan_out))
            layers.append(_ACTIVATIONS[activation]())
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        projection: list[nn.Module] = [nn.Flatten(), nn.Linear(widths[-1], self.output_dim), _ACTIVATIONS[activation]()]
        if dropout > 0:
            projection.append(nn.Dropout(dropout))
        self.projection = nn.Sequential(*projection)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.input_channels:
            raise ValueError(
                f"CNN expects images of shape (B, {self.input_channels}, H, W), got {tuple(x.shape)}"
            )
        return self.projection(self.pool(self.features(x)))
