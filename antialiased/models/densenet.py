"""Anti-aliased DenseNet: the stem's ``MaxPool(3, s2)`` becomes ``max0 = MaxPool(3, s1)`` +
``pool0 = BlurPool(s2)`` and each transition blurs (``pool = BlurPool(s2)``) instead of average
pooling, as in the paper. The rest is torchvision's DenseNet."""
from __future__ import annotations

from collections import OrderedDict

import torchvision
from torch import nn
from torchvision.models.densenet import DenseNet, _Transition

from antialiased.layers import BlurPool
from antialiased.models._blur import blurred_maxpool
from antialiased.models.registry import register_model

__all__ = ["ARCHS", "antialias_densenet"]

ARCHS = ("densenet121", "densenet161", "densenet169", "densenet201")


def antialias_densenet(model: DenseNet, *, filter_size: int = 4) -> DenseNet:
    """Turn a torchvision DenseNet (untrained) into the paper's anti-aliased one, in place."""
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    for name, module in model.features.named_children():
        if name == "pool0":
            layers["max0"], layers["pool0"] = blurred_maxpool(module, model.features.conv0.out_channels, filter_size)
            continue
        if isinstance(module, _Transition):
            module.pool = BlurPool(module.conv.out_channels, filt_size=filter_size, stride=2)
        layers[name] = module
    model.features = nn.Sequential(layers)
    return model


def _builder(arch: str):
    def build(*, filter_size: int = 4, **kwargs) -> DenseNet:
        return antialias_densenet(torchvision.models.get_model(arch, weights=None, **kwargs), filter_size=filter_size)

    build.__name__ = build.__qualname__ = arch
    build.__doc__ = f"Anti-aliased {arch}; ``kwargs`` go to torchvision's builder (e.g. num_classes, drop_rate)."
    return build


for _arch in ARCHS:
    register_model(_arch)(_builder(_arch))
