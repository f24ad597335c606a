"""Convolutional backbones: output shapes over input sizes and channels, parameter
counts recomputed from the architecture, the documented initialisation, and the
shipped configs."""

from __future__ import annotations

import importlib
import inspect
import math
from pathlib import Path

import pytest
import torch
from ruamel.yaml import YAML
from torch import nn

from mtlcli.algorithms import JointLearning
from mtlcli.backbones import CNN, ResNet18
from mtlcli.backbones.resnet import BasicBlock
from mtlcli.heads import MTLHeads

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "backbone"

BUILDERS = {
    "cnn": lambda c, bn: CNN(input_channels=c, channels=[8, 16], output_dim=12, batch_normalization=bn),
    "resnet_cifar": lambda c, bn: ResNet18(input_channels=c, output_dim=12, cifar_stem=True, batch_normalization=bn, base_width=4),
    "resnet_imagenet": lambda c, bn: ResNet18(input_channels=c, output_dim=12, cifar_stem=False, batch_normalization=bn, base_width=4),
}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [8, 28, 32])
@pytest.mark.parametrize("bn", [True, False])
def test_output_shape(name, channels, size, bn):
    torch.manual_seed(0)
    model = BUILDERS[name](channels, bn)
    out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 12) and model.output_dim == 12
    assert torch.isfinite(out).all()
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    conv_biases = [m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert has_bn is bn
    assert all(conv_biases) if not bn else not any(conv_biases)


@pytest.mark.parametrize("model", [CNN(3, [4], 5), ResNet18(3, 5, base_width=2)], ids=["cnn", "resnet"])
def test_wrong_input_shape_is_a_clear_error(model):
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 3, H, W\), got \(2, 64\)"):
        model(torch.randn(2, 64))
    with pytest.raises(ValueError, match=r"got \(2, 1, 8, 8\)"):
        model(torch.randn(2, 1, 8, 8))


def expected_resnet18_count(c: int, w: int, cifar_stem: bool, bn: bool, output_dim: int) -> int:
    """Parameters of ResNet-18 counted layer by layer from the architecture."""
    def conv(cin, cout, k):
        return cin * cout * k * k + (0 if bn else cout)

    def norm(ch):
        return 2 * ch if bn else 0

    total = conv(c, w, 3 if cifar_stem else 7) + norm(w)
    cin = w
    for width in (w, 2 * w, 4 * w, 8 * w):
        for block in range(2):
            total += conv(cin, width, 3) + norm(width) + conv(width, width, 3) + norm(width)
            if cin != width:  # the first block of stages 2-4 also changes stride: 1x1 shortcut
                total += conv(cin, width, 1) + norm(width)
            cin = width
    if output_dim != 8 * w:
        total += 8 * w * output_dim + output_dim
    return total


def test_resnet18_has_the_standard_parameter_count():
    # torchvision documents 11,689,512 parameters for resnet18, of which its
    # 512 -> 1000 classifier holds 513,000: the trunk is 11,176,512 (about 11.2M).
    assert expected_resnet18_count(3, 64, cifar_stem=False, bn=True, output_dim=512) == 11_689_512 - 513_000
    assert count(ResNet18(3, 512, cifar_stem=False)) == 11_176_512
    cifar = ResNet18(3, 512, cifar_stem=True)
    assert count(cifar) == expected_resnet18_count(3, 64, True, True, 512) == 11_176_512 - 3 * 64 * (49 - 9)
    assert isinstance(cifar.projection, nn.Identity)


@pytest.mark.parametrize("c, w, cifar_stem, bn, output_dim", [
    (1, 8, True, True, 64), (3, 4, False, False, 10), (1, 16, False, True, 128), (3, 8, True, False, 64),
])
def test_resnet18_parameter_count_follows_the_architecture(c, w, cifar_stem, bn, output_dim):
    model = ResNet18(c, output_dim, cifar_stem=cifar_stem, batch_normalization=bn, base_width=w)
    assert count(model) == expected_resnet18_count(c, w, cifar_stem, bn, output_dim)


def test_cnn_parameter_count_follows_the_architecture():
    c, widths, out = 3, [8, 16, 32], 20
    expected = sum(cin * cout * 9 + 2 * cout for cin, cout in zip([c, *widths[:-1]], widths)) + widths[-1] * out + out
    assert count(CNN(c, widths, out)) == expected
    no_bn = sum(cin * cout * 9 + cout for cin, cout in zip([c, *widths[:-1]], widths)) + widths[-1] * out + out
    assert count(CNN(c, widths, out, batch_normalization=False)) == no_bn


def assert_kaiming_std(weight: torch.Tensor, fan: int):
    expected = math.sqrt(2.0 / fan)
    assert abs(weight.mean().item()) < 0.05 * expected
    assert weight.std().item() == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("build", [
    lambda: CNN(3, [32, 64], 256),
    lambda: ResNet18(3, 256, base_width=16),
], ids=["cnn", "resnet"])
def test_documented_initialisation(build):
    torch.manual_seed(0)
    model = build()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in norms)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    biggest = max(convs, key=lambda m: m.weight.numel())
    assert_kaiming_std(biggest.weight.detach(), biggest.out_channels * biggest.kernel_size[0] * biggest.kernel_size[1])
    linear = next(m for m in model.modules() if isinstance(m, nn.Linear))
    assert_kaiming_std(linear.weight.detach(), linear.in_features)
    assert torch.all(linear.bias == 0)


def test_no_batchnorm_convolution_biases_start_at_zero():
    model = ResNet18(1, 10, batch_normalization=False, base_width=4)
    biases = [m.bias for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert biases and all(torch.all(b == 0) for b in biases)


@pytest.mark.parametrize("bn", [True, False])
def test_zero_init_residual_makes_every_block_its_shortcut(bn):
    torch.manual_seed(0)
    model = ResNet18(3, 10, batch_normalization=bn, base_width=4, zero_init_residual=True)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8
    for block in blocks:
        x = torch.randn(2, block.conv1.in_channels, 8, 8)
        assert torch.allclose(block(x), torch.relu(block.shortcut(x)))
    plain = ResNet18(3, 10, batch_normalization=bn, base_width=4)
    x = torch.randn(2, 4, 8, 8)
    block = [m for m in plain.modules() if isinstance(m, BasicBlock)][0]
    assert not torch.allclose(block(x), torch.relu(block.shortcut(x)))


@pytest.mark.parametrize("config, cls", [("cnn.yaml", CNN), ("resnet18.yaml", ResNet18)])
def test_shipped_config_matches_the_constructor_and_builds(config, cls):
    node = YAML(typ="safe").load((CONFIGS / config).read_text())
    module_name, _, class_name = node.pop("_target_").rpartition(".")
    assert getattr(importlib.import_module(module_name), class_name) is cls
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert list(node) == params  # every constructor argument, in order, nothing else
    model = cls(**node)
    out = model(torch.randn(2, node["input_channels"], 32, 32))
    assert out.shape == (2, node["output_dim"])


@pytest.mark.parametrize("backbone", [CNN(1, [8, 16], 16), ResNet18(1, 16, base_width=4)], ids=["cnn", "resnet"])
def test_output_dim_sizes_the_heads_and_gradients_reach_the_first_layer(backbone):
    torch.manual_seed(0)
    algorithm = JointLearning(backbone, MTLHeads(backbone.output_dim, {1: 2, 2: 3}))
    x = torch.randn(6, 1, 8, 8)
    out = algorithm.training_step(x, torch.tensor([0, 1, 2, 1, 0, 1]), torch.tensor([1, 2, 2, 1, 1, 2]))
    assert math.isfinite(out.loss.item())
    first_conv = next(m for m in backbone.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0
