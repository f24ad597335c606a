"""The weight initialisation of the convolutional backbones, applied explicitly.

Stated once so it can be documented and tested instead of depending on
PyTorch's per-layer defaults (which differ between layer types and have
changed across releases):

- ``Conv2d``: Kaiming-normal, ``std = sqrt(2 / fan_out)`` with
  ``fan_out = out_channels * kh * kw`` (He et al. 2015, the torchvision ResNet
  convention); bias, if any, 0.
- ``Linear``: Kaiming-normal, ``std = sqrt(2 / in_features)`` (a ReLU follows);
  bias 0.
- ``BatchNorm``: weight (scale) 1, bias (shift) 0.

The gains assume ReLU-family activations.
"""

from __future__ import annotations

from torch import nn


def init_weights(module: nn.Module) -> None:
    """Initialise every Conv2d, Linear and BatchNorm layer inside ``module`` (in place)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.affine:
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
