"""Anti-aliased DenseNet: the stem's ``MaxPool(3, s2)`` becomes ``max0 = MaxPool(3, s1)`` +
``pool0 = BlurPool(s2)`` and each transition blurs (``pool = BlurPool(s2)``) instead of average
pooling, as in the paper. The rest is torchvision's DenseNet."""
from __future__ import annotations

import re
from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.densenet import DenseNet, _Transition

from antialiased.layers import BlurPool
from antialiased.models._blur import blurred_maxpool
from antialiased.models.registry import register_torchvision_family

__all__ = ["ARCHS", "antialias_densenet", "upgrade_state_dict"]

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


# Older DenseNet weight files (torchvision's first ones, and the published loader's input) spell
# 'denselayer1.norm.1.weight' where the modules now say 'denselayer1.norm1.weight'.
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def upgrade_state_dict(state_dict: dict) -> dict:
    """Rename legacy DenseNet keys (``norm.1.weight`` -> ``norm1.weight``); other keys pass unchanged.

    Files saved before PyTorch 0.4.1 also lack BN's ``num_batches_tracked``; it is added as 0,
    which is what ``BatchNorm`` itself does when loading such files.

    Example:
        >>> list(upgrade_state_dict({"features.denseblock1.denselayer2.conv.2.weight": 0, "classifier.bias": 1}))
        ['features.denseblock1.denselayer2.conv2.weight', 'classifier.bias']
    """
    upgraded = {}
    for key, value in state_dict.items():
        match = _LEGACY_KEY.match(key)
        upgraded[match[1] + match[2] if match else key] = value
    for key in list(upgraded):
        if key.endswith(".running_mean"):
            upgraded.setdefault(key[: -len("running_mean")] + "num_batches_tracked", torch.tensor(0))
    return upgraded


register_torchvision_family(ARCHS, antialias_densenet, upgrade_state_dict=upgrade_state_dict)
