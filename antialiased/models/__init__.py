"""Models by name: the paper's 23 anti-aliased architectures, every torchvision classifier, timm's models.

A name becomes a :class:`ModelSpec` once (:func:`get_model_spec`, the registry's one parser); the
family that owns it builds the model and knows its weights (:mod:`~antialiased.models.families`);
:func:`load_model` (``spec``, :class:`WeightsSpec`) is the one loader and :func:`create_model` its
by-name front. ``create_model('resnet50_lpf4')`` is torchvision's ResNet-50 converted by
:func:`antialias` with the paper's choices (its published weights with ``pretrained=True``);
``antialiased.resnet50(filter_size=4)`` is the published package's spelling of the same thing.
Every model made here carries ``model.model_spec`` and ``model.weights_info``.
"""
from antialiased.models import families  # noqa: F401  (registers the built-in families, in their order)
from antialiased.models.antialias import AntialiasSummary, antialias
from antialiased.models.constructors import *  # noqa: F401,F403  the paper's 23 constructors (its __all__)
from antialiased.models.constructors import paper_constructor
from antialiased.models.loading import WeightsSpec, create_model, init_from_baseline, load_model
from antialiased.models.paper import PAPER_ARCHS
from antialiased.models.registry import (
    ArchNames,
    Family,
    ModelSpec,
    WeightsSource,
    get_family,
    get_model_spec,
    list_archs,
    list_families,
    list_models,
    register_family,
    register_model,
)
from antialiased.models.transfer import copy_params_buffers, load_baseline
from antialiased.models.weights_info import WeightsInfo, model_identity

__all__ = [
    "create_model",
    "load_model",
    "WeightsSpec",
    "get_model_spec",
    "ModelSpec",
    "list_models",
    "list_archs",
    "list_families",
    "get_family",
    "register_family",
    "register_model",
    "Family",
    "ArchNames",
    "WeightsSource",
    "WeightsInfo",
    "model_identity",
    "load_baseline",
    "init_from_baseline",
    "copy_params_buffers",
    "antialias",
    "AntialiasSummary",
    "PAPER_ARCHS",
    "paper_constructor",
    *PAPER_ARCHS,
]
