"""Small rebuilding steps shared by the families: how a strided layer becomes an anti-aliased one."""
from __future__ import annotations

from typing import Iterable

from torch import nn

from antialiased.errors import ModelError
from antialiased.layers import BlurPool

__all__ = ["unstride", "blurred_maxpool", "blur_maxpools"]


def unstride(conv: nn.Conv2d, *, keep: int = 1) -> int:
    """Set a conv's (square) stride to ``keep`` and return the factor left for a blur layer."""
    stride = conv.stride[0]
    if conv.stride != (stride, stride):
        raise ModelError(f"expected a square stride, got {conv.stride} in {conv}")
    if stride % keep:
        raise ModelError(f"cannot keep stride {keep} of {conv}: it does not divide {stride}")
    conv.stride = (keep, keep)
    return stride // keep


def blurred_maxpool(pool: nn.MaxPool2d, channels: int, filter_size: int) -> list[nn.Module]:
    """``MaxPool(k, s)`` -> ``[MaxPool(k, 1), BlurPool(s)]``: densely evaluated max, then blur-subsample."""
    return [
        nn.MaxPool2d(kernel_size=pool.kernel_size, stride=1, padding=pool.padding, dilation=pool.dilation),
        BlurPool(channels, filt_size=filter_size, stride=pool.stride if isinstance(pool.stride, int) else pool.stride[0]),
    ]


def blur_maxpools(modules: Iterable[nn.Module], filter_size: int, in_channels: int = 3) -> nn.Sequential:
    """A Sequential of ``modules`` with each max-pool replaced as :func:`blurred_maxpool`.

    The blur's channel count is the output width of the last conv before the pool.
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for module in modules:
        if isinstance(module, nn.MaxPool2d):
            layers += blurred_maxpool(module, channels, filter_size)
            continue
        if isinstance(module, nn.Conv2d):
            channels = module.out_channels
        layers.append(module)
    return nn.Sequential(*layers)
