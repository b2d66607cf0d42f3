"""Small baseline networks for the demo and the CIFAR comparison of anti-aliasing methods.

They hold plain strided subsampling only (max-pools, strided convs, a strided 1x1 shortcut); the
anti-aliased variants are these nets converted by :func:`antialiased.models.antialias.antialias`
(see :mod:`antialiased.demo.variants`), so the demo measures exactly what the library builds.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from antialiased.errors import ConfigError

__all__ = ["NETS", "DemoCNN", "SmallResNet", "build_net"]


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class DemoCNN(nn.Sequential):
    """A five-layer CNN with three 2x downsamplings (total stride 8): two max-pools and one strided conv.

    Shape:
        - Input: :math:`(N, 3, H, W)`
        - Output: :math:`(N, \\text{num\\_classes})`

    Example:
        >>> import torch
        >>> DemoCNN(num_classes=8)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 8])
    """

    def __init__(self, *, num_classes: int = 10, width: int = 16) -> None:
        w = width
        super().__init__(
            *_conv_bn_relu(3, w), nn.MaxPool2d(2, stride=2),
            *_conv_bn_relu(w, 2 * w), nn.MaxPool2d(2, stride=2),
            *_conv_bn_relu(2 * w, 4 * w, stride=2),
            *_conv_bn_relu(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, num_classes),
        )


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride > 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A CIFAR-sized ResNet: stem + three stages of basic blocks (widths w, 2w, 4w; strides 1, 2, 2; total 4).

    Shape:
        - Input: :math:`(N, 3, H, W)`
        - Output: :math:`(N, \\text{num\\_classes})`

    Example:
        >>> import torch
        >>> SmallResNet(num_classes=10, width=8)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, *, num_classes: int = 10, width: int = 16, blocks: int = 1) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(*_conv_bn_relu(3, w))
        layers: list[nn.Module] = []
        for cin, cout, stride in [(w, w, 1), (w, 2 * w, 2), (2 * w, 4 * w, 2)]:
            layers += [_BasicBlock(cin if b == 0 else cout, cout, stride if b == 0 else 1) for b in range(blocks)]
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, num_classes))

    def forward(self, x):
        return self.head(self.layers(self.stem(x)))


# network name -> builder(*, num_classes, width) of the baseline
NETS: dict[str, Callable[..., nn.Module]] = {"democnn": DemoCNN, "smallresnet": SmallResNet}


def build_net(name: str, *, num_classes: int, width: int = 16) -> nn.Module:
    """The baseline ``name`` of :data:`NETS` (convert it with :func:`~antialiased.demo.variants.build_variant`)."""
    if name not in NETS:
        raise ConfigError(f"unknown demo network {name!r}; choose from {sorted(NETS)}")
    return NETS[name](num_classes=num_classes, width=width)
