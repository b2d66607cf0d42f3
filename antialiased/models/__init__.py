"""The paper's 23 anti-aliased ImageNet architectures, their registry and constructors.

``create_model('resnet50_lpf4')`` builds the anti-aliased ResNet-50 (filter size 4);
``create_model('resnet50')`` the torchvision baseline. ``antialiased.resnet50(filter_size=4)``
is the published package's spelling of the same thing. Every model made here carries
``model.model_spec`` (:class:`ModelSpec`: what the name means) and ``model.weights_info``
(:class:`WeightsInfo`: which weights it holds).
"""
# Importing the family modules registers their architectures; the names are listed there only.
from antialiased.models import alexnet as _alexnet  # noqa: F401
from antialiased.models import densenet as _densenet  # noqa: F401
from antialiased.models import mobilenet as _mobilenet  # noqa: F401
from antialiased.models import resnet as _resnet  # noqa: F401
from antialiased.models import vgg as _vgg  # noqa: F401
from antialiased.models.factory import create_model, get_model, paper_constructor
from antialiased.models.registry import (
    ModelSpec,
    get_model_spec,
    list_archs,
    list_models,
    parse_model_name,
    register_model,
    register_torchvision_family,
)
from antialiased.models.transfer import copy_params_buffers, init_from_baseline
from antialiased.models.weights_info import WeightsInfo

PAPER_ARCHS: tuple[str, ...] = tuple(list_archs())
"""The paper's architectures, as the family modules above registered them."""

# The paper's constructors: arch(pretrained=False, filter_size=4, **kwargs), e.g. antialiased.resnet50.
globals().update({arch: paper_constructor(arch) for arch in PAPER_ARCHS})

__all__ = [
    "create_model",
    "get_model",
    "get_model_spec",
    "list_models",
    "list_archs",
    "register_model",
    "register_torchvision_family",
    "parse_model_name",
    "ModelSpec",
    "WeightsInfo",
    "PAPER_ARCHS",
    "copy_params_buffers",
    "init_from_baseline",
    *PAPER_ARCHS,
]
