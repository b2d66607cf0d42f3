"""Small networks for the demo and the CIFAR reproduction, each with a baseline and an anti-aliased form.

Anti-aliasing follows the paper's recipe: ``MaxPool(k, stride=s)`` becomes ``MaxPool(k, stride=1)``
then ``BlurPool(stride=s)``; a strided conv + ReLU becomes conv(stride 1) + ReLU + ``BlurPool``.
``filter_size=None`` builds the baseline with the plain strided operations.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from antialiased.layers import BlurPool

__all__ = ["NETS", "DemoCNN", "SmallResNet", "build_net"]


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _max_pool_down(channels: int, filter_size: int | None) -> list[nn.Module]:
    if filter_size is None:
        return [nn.MaxPool2d(2, stride=2)]
    return [nn.MaxPool2d(2, stride=1), BlurPool(channels, filt_size=filter_size, stride=2)]


def _conv_down(cin: int, cout: int, filter_size: int | None) -> list[nn.Module]:
    if filter_size is None:
        return _conv_bn_relu(cin, cout, stride=2)
    return _conv_bn_relu(cin, cout) + [BlurPool(cout, filt_size=filter_size, stride=2)]


class DemoCNN(nn.Sequential):
    """A five-layer CNN with three 2x downsamplings: two max-pools and one strided conv.

    Shape:
        - Input: :math:`(N, 3, H, W)`
        - Output: :math:`(N, \\text{num\\_classes})`

    Example:
        >>> import torch
        >>> DemoCNN(num_classes=8, filter_size=3)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 8])
    """

    def __init__(self, *, num_classes: int = 10, filter_size: int | None = None, width: int = 16) -> None:
        w = width
        super().__init__(
            *_conv_bn_relu(3, w), *_max_pool_down(w, filter_size),
            *_conv_bn_relu(w, 2 * w), *_max_pool_down(2 * w, filter_size),
            *_conv_down(2 * w, 4 * w, filter_size),
            *_conv_bn_relu(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, num_classes),
        )
        self.filter_size = filter_size


class _BasicBlock(nn.Module):
    # As the paper's anti-aliased ResNet: a strided block blurs after conv1's ReLU (conv1 at stride
    # 1) and blurs before the 1x1 projection of the shortcut.
    def __init__(self, cin: int, cout: int, stride: int, filter_size: int | None) -> None:
        super().__init__()
        aa = filter_size is not None and stride > 1
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=1 if aa else stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.blur = BlurPool(cout, filt_size=filter_size, stride=stride) if aa else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride > 1 or cin != cout:
            proj = [nn.Conv2d(cin, cout, 1, stride=1 if aa else stride, bias=False), nn.BatchNorm2d(cout)]
            self.shortcut = nn.Sequential(*([BlurPool(cin, filt_size=filter_size, stride=stride)] if aa else []), *proj)

    def forward(self, x):
        out = self.blur(self.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A CIFAR-sized ResNet: stem + three stages of basic blocks (widths w, 2w, 4w; strides 1, 2, 2).

    Shape:
        - Input: :math:`(N, 3, H, W)`
        - Output: :math:`(N, \\text{num\\_classes})`

    Example:
        >>> import torch
        >>> SmallResNet(num_classes=10, filter_size=4, width=8)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, *, num_classes: int = 10, filter_size: int | None = None, width: int = 16,
                 blocks: int = 1) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(*_conv_bn_relu(3, w))
        layers: list[nn.Module] = []
        for i, (cin, cout, stride) in enumerate([(w, w, 1), (w, 2 * w, 2), (2 * w, 4 * w, 2)]):
            layers += [_BasicBlock(cin if b == 0 else cout, cout, stride if b == 0 else 1, filter_size)
                       for b in range(blocks)]
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, num_classes))
        self.filter_size = filter_size

    def forward(self, x):
        return self.head(self.layers(self.stem(x)))


# network name -> builder(*, num_classes, filter_size, width)
NETS: dict[str, Callable[..., nn.Module]] = {"democnn": DemoCNN, "smallresnet": SmallResNet}


def build_net(name: str, *, num_classes: int, filter_size: int | None, width: int = 16) -> nn.Module:
    """Build ``name`` from :data:`NETS` (baseline when ``filter_size`` is None)."""
    if name not in NETS:
        raise ValueError(f"unknown demo network {name!r}; choose from {sorted(NETS)}")
    return NETS[name](num_classes=num_classes, filter_size=filter_size, width=width)
