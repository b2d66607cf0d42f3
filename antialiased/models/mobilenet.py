"""Anti-aliased MobileNet-v2: each stride-2 depthwise conv runs at stride 1 and its block blurs
(``BlurPool(s2)``) after the depthwise conv's BN + ReLU6, before the 1x1 projection, as in the
paper. The first conv keeps its stride (as the published model does), and the classifier is a
single ``Linear`` without dropout, as the published model (and its weights' key layout) has it."""
from __future__ import annotations

from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual, MobileNetV2

from antialiased.errors import ModelError
from antialiased.layers import BlurPool
from antialiased.models._blur import unstride
from antialiased.models.registry import register_torchvision_family

__all__ = ["antialias_mobilenet_v2"]


def _antialias_block(block: InvertedResidual, filter_size: int) -> None:
    layers: list[nn.Module] = []
    for module in block.conv:
        layers.append(module)
        conv = module[0] if isinstance(module, nn.Sequential) else module
        if isinstance(conv, nn.Conv2d) and conv.stride != (1, 1):
            stride = unstride(conv)
            layers.append(BlurPool(conv.out_channels, filt_size=filter_size, stride=stride))
    block.conv = nn.Sequential(*layers)


def antialias_mobilenet_v2(model: MobileNetV2, *, filter_size: int = 4) -> MobileNetV2:
    """Turn a torchvision MobileNetV2 (untrained) into the paper's anti-aliased one, in place."""
    for block in model.features:
        if isinstance(block, InvertedResidual):
            _antialias_block(block, filter_size)
    linear = model.classifier[-1]
    model.classifier = nn.Sequential(linear)
    return model


def _without_dropout(kwargs: dict) -> dict:
    if kwargs.get("dropout", 0.0):
        raise ModelError(
            "the anti-aliased mobilenet_v2 has no dropout layer (as the published model, whose weights "
            "expect 'classifier.0'); leave out the dropout argument"
        )
    return {**kwargs, "dropout": 0.0}


register_torchvision_family(["mobilenet_v2"], antialias_mobilenet_v2, prepare_kwargs=_without_dropout)
