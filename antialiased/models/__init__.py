"""The paper's 23 anti-aliased ImageNet architectures, their registry and constructors.

``create_model('resnet50_lpf4')`` builds the anti-aliased ResNet-50 (filter size 4);
``create_model('resnet50')`` the torchvision baseline. ``antialiased.resnet50(filter_size=4)``
is the published package's spelling of the same thing.
"""
from antialiased.models import resnet as _resnet  # noqa: F401  (registers the family)
from antialiased.models.registry import (
    create_model,
    get_model,
    list_archs,
    list_models,
    paper_constructor,
    parse_model_name,
    register_model,
)

__all__ = [
    "create_model",
    "get_model",
    "list_models",
    "list_archs",
    "register_model",
    "parse_model_name",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
]

resnet18 = paper_constructor("resnet18")
resnet34 = paper_constructor("resnet34")
resnet50 = paper_constructor("resnet50")
resnet101 = paper_constructor("resnet101")
resnet152 = paper_constructor("resnet152")
resnext50_32x4d = paper_constructor("resnext50_32x4d")
resnext101_32x8d = paper_constructor("resnext101_32x8d")
wide_resnet50_2 = paper_constructor("wide_resnet50_2")
wide_resnet101_2 = paper_constructor("wide_resnet101_2")
