"""Anti-aliased VGG (with and without batch norm): every ``MaxPool(2, s2)`` becomes
``MaxPool(2, s1)`` + ``BlurPool(s2)``, as in the paper; the rest is torchvision's VGG."""
from __future__ import annotations

import torchvision
from torchvision.models.vgg import VGG

from antialiased.models._blur import blur_maxpools
from antialiased.models.registry import register_model

__all__ = ["ARCHS", "antialias_vgg"]

ARCHS = ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")


def antialias_vgg(model: VGG, *, filter_size: int = 4) -> VGG:
    """Turn a torchvision VGG (untrained) into the paper's anti-aliased one, in place."""
    model.features = blur_maxpools(model.features, filter_size)
    return model


def _builder(arch: str):
    def build(*, filter_size: int = 4, **kwargs) -> VGG:
        return antialias_vgg(torchvision.models.get_model(arch, weights=None, **kwargs), filter_size=filter_size)

    build.__name__ = build.__qualname__ = arch
    build.__doc__ = f"Anti-aliased {arch}; ``kwargs`` go to torchvision's builder (e.g. num_classes, dropout)."
    return build


for _arch in ARCHS:
    register_model(_arch)(_builder(_arch))
