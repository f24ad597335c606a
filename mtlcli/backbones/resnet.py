"""ResNet-18 backbone with an optional CIFAR-style stem."""

from __future__ import annotations

import torch
from torch import nn

from mtlcli.backbones.init import init_weights


def _norm(channels: int, batch_normalization: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_normalization else nn.Identity()


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al. 2016, the ResNet-18/34 block).

    ``out = relu(norm2(conv2(relu(norm1(conv1(x))))) + shortcut(x))``; the
    shortcut is a strided 1x1 convolution (+ norm) when the stride or the width
    changes, the identity otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, batch_normalization: bool):
        super().__init__()
        bias = not batch_normalization  # a bias before BatchNorm is cancelled by its mean
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias)
        self.norm1 = _norm(out_channels, batch_normalization)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=bias)
        self.norm2 = _norm(out_channels, batch_normalization)
        self.relu2 = nn.ReLU()  # one module per call site, so per-layer hooks see each once
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=bias),
                _norm(out_channels, batch_normalization),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))

    def zero_init_residual(self) -> None:
        """Make the residual branch output 0, so the block starts as ``relu(shortcut(x))``."""
        last = self.norm2 if isinstance(self.norm2, nn.BatchNorm2d) else self.conv2
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)


class ResNet18(nn.Module):
    """ResNet-18: a stem, four stages of two :class:`BasicBlock` each (widths
    ``w, 2w, 4w, 8w`` with ``w = base_width``; strides 1, 2, 2, 2), global average
    pooling, then a projection to ``output_dim``.

    Paper: "Deep Residual Learning for Image Recognition", Kaiming He, Xiangyu
    Zhang, Shaoqing Ren, Jian Sun, CVPR 2016. https://arxiv.org/abs/1512.03385

    Stems: the ImageNet stem is ``Conv7x7 stride 2 -> norm -> ReLU -> MaxPool3x3
    stride 2``; the CIFAR-style stem (``cifar_stem=True``) is ``Conv3x3 stride 1 ->
    norm -> ReLU`` with no max-pool, which keeps the resolution of 28x28 and 32x32
    images (and of 8x8 digits). Projection: when ``output_dim == 8 * base_width``
    (512 by default) the pooled features are the representation, as in the
    standard ResNet-18 (about 11.2M parameters for 3 input channels); otherwise a
    ``Linear(8w, output_dim)`` followed by ReLU. Without batch normalisation the
    norms are identities and the convolutions get biases. Initialisation (see
    :mod:`mtlcli.backbones.init`): convolutions Kaiming-normal (fan-out), the
    projection Kaiming-normal (fan-in), biases 0, BatchNorm weight 1 and bias 0;
    with ``zero_init_residual`` the last norm (or convolution) of every block is
    zeroed so each block starts as its shortcut (Goyal et al. 2017).

    Args:
        input_channels: channels of the input images (3 for CIFAR, 1 for MNIST-family and digits).
        output_dim: size of the shared representation the task heads read; 8 * base_width skips the projection.
        cifar_stem: use the 3x3 stride-1 stem without max-pool (for small images) instead of the ImageNet stem.
        batch_normalization: use ``BatchNorm2d`` after every convolution.
        base_width: channels of the first stage (64 in the standard ResNet-18; smaller values give a slimmer network).
        zero_init_residual: start every residual branch at zero.
    """

    def __init__(
        self,
        input_channels: int,
        output_dim: int = 512,
        cifar_stem: bool = True,
        batch_normalization: bool = True,
        base_width: int = 64,
        zero_init_residual: bool = False,
    ):
        super().__init__()
        if base_width < 1:
            raise ValueError(f"base_width must be a positive integer, got {base_width}")
        self.input_channels = int(input_channels)
        self.output_dim = int(output_dim)
        w = int(base_width)
        bias = not batch_normalization
        if cifar_stem:
            stem: list[nn.Module] = [nn.Conv2d(self.input_channels, w, 3, stride=1, padding=1, bias=bias)]
        else:
            stem = [nn.Conv2d(self.input_channels, w, 7, stride=2, padding=3, bias=bias)]
        stem += [_norm(w, batch_normalization), nn.ReLU()]
        if not cifar_stem:
            stem.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        stages: list[nn.Module] = []
        in_channels = w
        for width, stride in ((w, 1), (2 * w, 2), (4 * w, 2), (8 * w, 2)):
            stages.append(nn.Sequential(
                BasicBlock(in_channels, width, stride, batch_normalization),
                BasicBlock(width, width, 1, batch_normalization),
            ))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        if self.output_dim == 8 * w:
            self.projection: nn.Module = nn.Identity()
        else:
            self.projection = nn.Sequential(nn.Linear(8 * w, self.output_dim), nn.ReLU())
        self.cifar_stem = bool(cifar_stem)
        self.batch_normalization = bool(batch_normalization)
        self.base_width = w
        init_weights(self)
        if zero_init_residual:
            for block in self.modules():
                if isinstance(block, BasicBlock):
                    block.zero_init_residual()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.input_channels:
            raise ValueError(
                f"ResNet18 expects images of shape (B, {self.input_channels}, H, W), got {tuple(x.shape)}"
            )
        return self.projection(self.pool(self.stages(self.stem(x))))

    def extra_repr(self) -> str:
        return (
            f"input_channels={self.input_channels}, output_dim={self.output_dim}, cifar_stem={self.cifar_stem}, "
            f"batch_normalization={self.batch_normalization}, base_width={self.base_width}"
        )
