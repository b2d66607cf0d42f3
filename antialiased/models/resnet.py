"""Anti-aliased ResNet, ResNeXt and Wide ResNet (torchvision's models with blurred downsampling).

Where the paper's models blur (and the published weights' key layout):

- stem: ``MaxPool(3, s2)`` -> ``maxpool = [MaxPool(2, s1), BlurPool(s2)]``;
- BasicBlock with stride s: ``conv1`` runs at stride 1, the blur comes after ``bn1``/ReLU, as
  ``conv2 = [BlurPool(s), conv3x3]``;
- Bottleneck with stride s: ``conv2`` (the strided 3x3 in torchvision's v1.5) runs at stride 1,
  the blur comes after ``bn2``/ReLU, as ``conv3 = [BlurPool(s), conv1x1]``;
- shortcut with stride s: ``downsample = [BlurPool(s), conv1x1 (stride 1), norm]``.

The network is built by torchvision (its initialization and keyword arguments such as
``num_classes``, ``zero_init_residual``, ``replace_stride_with_dilation`` apply) and then rebuilt
in place; modules keep their names, so the state dict stays in torchvision's order.
"""
from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from antialiased.errors import ModelError
from antialiased.layers import BlurPool
from antialiased.models._blur import blurred_maxpool, unstride
from antialiased.models.registry import register_torchvision_family

__all__ = ["ARCHS", "antialias_resnet"]

ARCHS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
)


def _antialias_block(block: nn.Module, filter_size: int) -> None:
    # The strided conv of each block: conv1 in BasicBlock, conv2 in torchvision's Bottleneck.
    if isinstance(block, BasicBlock):
        strided, blurred, channels = "conv1", "conv2", block.conv2.in_channels
    elif isinstance(block, Bottleneck):
        strided, blurred, channels = "conv2", "conv3", block.conv3.in_channels
    else:
        raise ModelError(f"unsupported residual block {type(block).__name__}: expected torchvision's BasicBlock "
                         f"or Bottleneck")
    stride = unstride(getattr(block, strided))
    if stride == 1:
        return
    setattr(block, blurred, nn.Sequential(BlurPool(channels, filt_size=filter_size, stride=stride), getattr(block, blurred)))
    shortcut_conv, norm = block.downsample
    unstride(shortcut_conv)
    block.downsample = nn.Sequential(
        BlurPool(shortcut_conv.in_channels, filt_size=filter_size, stride=stride), shortcut_conv, norm
    )


def antialias_resnet(model: ResNet, *, filter_size: int = 4) -> ResNet:
    """Turn a torchvision ResNet (untrained) into the paper's anti-aliased one, in place."""
    # The published stem pools with a 2x2 window (torchvision: 3x3, padded) before the blur.
    stem_pool = nn.MaxPool2d(kernel_size=2, stride=2)
    model.maxpool = nn.Sequential(*blurred_maxpool(stem_pool, model.conv1.out_channels, filter_size))
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            _antialias_block(block, filter_size)
    return model


register_torchvision_family(ARCHS, antialias_resnet)
