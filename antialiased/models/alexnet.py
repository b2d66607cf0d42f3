"""Anti-aliased AlexNet: the stride-4 first conv runs at stride 2 and is followed by ReLU +
``BlurPool(s2)`` (blurring after the non-linearity, as the paper does); each ``MaxPool(3, s2)``
becomes ``MaxPool(3, s1)`` + ``BlurPool(s2)``. The rest is torchvision's AlexNet."""
from __future__ import annotations

from torch import nn
from torchvision.models.alexnet import AlexNet

from antialiased.errors import ModelError
from antialiased.layers import BlurPool
from antialiased.models._blur import blur_maxpools, unstride
from antialiased.models.registry import register_torchvision_family

__all__ = ["antialias_alexnet"]


def antialias_alexnet(model: AlexNet, *, filter_size: int = 4) -> AlexNet:
    """Turn a torchvision AlexNet (untrained) into the paper's anti-aliased one, in place."""
    conv, relu, *rest = model.features
    if not (isinstance(conv, nn.Conv2d) and isinstance(relu, nn.ReLU)):
        raise ModelError("expected torchvision's AlexNet: features starting with Conv2d, ReLU")
    # Half of the stride stays in the conv (the dense stride-1 conv would cost 16x); the blur does the rest.
    blur_stride = unstride(conv, keep=conv.stride[0] // 2)
    first = [conv, relu, BlurPool(conv.out_channels, filt_size=filter_size, stride=blur_stride)]
    model.features = blur_maxpools([*first, *rest], filter_size)
    return model


register_torchvision_family(["alexnet"], antialias_alexnet)
