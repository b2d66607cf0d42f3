"""Anti-aliased VGG (with and without batch norm): every ``MaxPool(2, s2)`` becomes
``MaxPool(2, s1)`` + ``BlurPool(s2)``, as in the paper; the rest is torchvision's VGG."""
from __future__ import annotations

from torchvision.models.vgg import VGG

from antialiased.models._blur import blur_maxpools
from antialiased.models.registry import register_torchvision_family

__all__ = ["ARCHS", "antialias_vgg"]

ARCHS = ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")


def antialias_vgg(model: VGG, *, filter_size: int = 4) -> VGG:
    """Turn a torchvision VGG (untrained) into the paper's anti-aliased one, in place."""
    model.features = blur_maxpools(model.features, filter_size)
    return model


register_torchvision_family(ARCHS, antialias_vgg)
