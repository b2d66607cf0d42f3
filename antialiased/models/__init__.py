"""The paper's 23 anti-aliased ImageNet architectures, their registry and constructors.

``create_model('resnet50_lpf4')`` builds the anti-aliased ResNet-50 (filter size 4);
``create_model('resnet50')`` the torchvision baseline. ``antialiased.resnet50(filter_size=4)``
is the published package's spelling of the same thing.
"""
# Importing the family modules registers their architectures.
from antialiased.models import alexnet as _alexnet  # noqa: F401
from antialiased.models import densenet as _densenet  # noqa: F401
from antialiased.models import mobilenet as _mobilenet  # noqa: F401
from antialiased.models import resnet as _resnet  # noqa: F401
from antialiased.models import vgg as _vgg  # noqa: F401
from antialiased.models.registry import (
    create_model,
    get_model,
    list_archs,
    list_models,
    paper_constructor,
    parse_model_name,
    register_model,
)
from antialiased.models.transfer import copy_params_buffers, init_from_baseline

__all__ = [
    "create_model",
    "get_model",
    "list_models",
    "list_archs",
    "register_model",
    "parse_model_name",
    "copy_params_buffers",
    "init_from_baseline",
    # the paper's constructors: arch(pretrained=False, filter_size=4, **kwargs)
    "alexnet",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg11_bn",
    "vgg13_bn",
    "vgg16_bn",
    "vgg19_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "mobilenet_v2",
]

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
