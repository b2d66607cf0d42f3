"""The published package's constructors of the paper's 23 architectures: ``antialiased.resnet50(filter_size=4)``.

``arch(pretrained=False, filter_size=4, **kwargs)`` is ``create_model('<arch>_lpf<filter_size>', ...)``.
Written out one per line (not generated at import time) so that static tools see them; a test
checks that they are exactly the paper's architectures. ``__all__`` names these 23 and only them, once:
``antialiased.models`` and the top-level ``antialiased`` re-export them from here (``import *``);
:func:`paper_constructor`, the helper that makes them, is imported by name.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from antialiased.errors import ModelError
from antialiased.layers import MAX_FILTER_SIZE
from antialiased.models.loading import create_model
from antialiased.models.paper import PAPER
from antialiased.models.registry import ModelSpec

__all__ = ["alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2", "wide_resnet101_2", "densenet121", "densenet161", "densenet169", "densenet201", "mobilenet_v2"]


def paper_constructor(arch: str) -> Callable[..., nn.Module]:
    """The published package's style of constructor, ``arch(pretrained=False, filter_size=4, **kwargs)``."""

    def constructor(pretrained: bool = False, filter_size: int = 4, **kwargs) -> nn.Module:
        if not isinstance(filter_size, int) or isinstance(filter_size, bool) or not 1 <= filter_size <= MAX_FILTER_SIZE:
            raise ModelError(f"filter_size must be an integer from 1 to {MAX_FILTER_SIZE}, got {filter_size!r}")
        # The published constructors spell it with a leading underscore.
        if "_force_nonfinetuned" in kwargs:
            kwargs["force_nonfinetuned"] = kwargs.pop("_force_nonfinetuned")
        return create_model(ModelSpec(PAPER.name, arch, filter_size), pretrained=pretrained, **kwargs)

    constructor.__name__ = constructor.__qualname__ = arch
    constructor.__doc__ = (
        f"Anti-aliased {arch} (paper-style constructor): ``create_model`` of the paper's {arch} with an "
        f"``_lpf<filter_size>`` name.\n\n"
        f"    Args:\n"
        f"        pretrained: load the published ImageNet weights.\n"
        f"        filter_size: blur filter taps, 1-{MAX_FILTER_SIZE}.\n"
        f"        **kwargs: as :func:`create_model` (weights, force_nonfinetuned, progress, num_classes, ...).\n"
    )
    return constructor


alexnet = paper_constructor("alexnet")
vgg11 = paper_constructor("vgg11")
vgg13 = paper_constructor("vgg13")
vgg16 = paper_constructor("vgg16")
vgg19 = paper_constructor("vgg19")
vgg11_bn = paper_constructor("vgg11_bn")
vgg13_bn = paper_constructor("vgg13_bn")
vgg16_bn = paper_constructor("vgg16_bn")
vgg19_bn = paper_constructor("vgg19_bn")
resnet18 = paper_constructor("resnet18")
resnet34 = paper_constructor("resnet34")
resnet50 = paper_constructor("resnet50")
resnet101 = paper_constructor("resnet101")
resnet152 = paper_constructor("resnet152")
resnext50_32x4d = paper_constructor("resnext50_32x4d")
resnext101_32x8d = paper_constructor("resnext101_32x8d")
wide_resnet50_2 = paper_constructor("wide_resnet50_2")
wide_resnet101_2 = paper_constructor("wide_resnet101_2")
densenet121 = paper_constructor("densenet121")
densenet161 = paper_constructor("densenet161")
densenet169 = paper_constructor("densenet169")
densenet201 = paper_constructor("densenet201")
mobilenet_v2 = paper_constructor("mobilenet_v2")
