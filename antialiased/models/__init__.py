"""Models by name: the paper's 23 anti-aliased architectures, every torchvision classifier, timm's models.

``create_model('resnet50_lpf4')`` builds the paper's anti-aliased ResNet-50 (filter size 4);
``create_model('resnet50')`` the torchvision baseline. ``antialiased.resnet50(filter_size=4)``
is the published package's spelling of the same thing. Other torchvision models
(``create_model('efficientnet_b0_lpf4')``) and timm's (``create_model('timm/resnet50d_lpf4')``)
are their baselines converted by :func:`~antialiased.models.antialias.antialias`, with
``aa_method=`` choosing the method. Every model made here carries ``model.model_spec``
(:class:`ModelSpec`: what the name means) and ``model.weights_info`` (:class:`WeightsInfo`:
which weights it holds).
"""
# Importing it registers the paper's architectures (antialias() in the published layout); the names
# are listed once, in antialias/_paper.py's table of the paper's choices.
from antialiased.models import paper as _paper  # noqa: F401
from antialiased.models.factory import create_model, get_model, paper_constructor

# The sources after the paper's, in lookup order (importing registers them).
from antialiased.models import converted as _converted  # noqa: F401, E402  (torchvision's models)
from antialiased.models import _timm  # noqa: F401, E402  (timm/ names; timm is imported only when used)
from antialiased.models.registry import (
    ModelSpec,
    get_model_spec,
    list_archs,
    list_models,
    list_sources,
    parse_model_name,
    register_model,
    register_torchvision_family,
)
from antialiased.models.transfer import copy_params_buffers, init_from_baseline
from antialiased.models.antialias import AntialiasSummary, antialias  # noqa: F401  (anti-alias any CNN)
from antialiased.models.weights_info import WeightsInfo

PAPER_ARCHS: tuple[str, ...] = tuple(list_archs())
"""The paper's architectures, as :mod:`antialiased.models.paper` registered them."""

# The paper's constructors: arch(pretrained=False, filter_size=4, **kwargs), e.g. antialiased.resnet50.
globals().update({arch: paper_constructor(arch) for arch in PAPER_ARCHS})

__all__ = [
    "create_model",
    "get_model",
    "get_model_spec",
    "list_models",
    "list_archs",
    "list_sources",
    "register_model",
    "register_torchvision_family",
    "parse_model_name",
    "ModelSpec",
    "WeightsInfo",
    "PAPER_ARCHS",
    "copy_params_buffers",
    "init_from_baseline",
    "antialias",
    "AntialiasSummary",
    *PAPER_ARCHS,
]
