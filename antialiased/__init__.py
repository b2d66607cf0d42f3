"""antialiased: shift-invariant (anti-aliased) convolutional networks for PyTorch.

Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019.

The user's API: :func:`create_model`, :func:`list_models`, :func:`get_model_spec` and
:class:`ModelSpec` (models by name), :func:`antialias` and :func:`load_baseline` (any CNN and its
baseline's weights), the layers a user inserts by hand (each method's down- and upsampling modules:
``BlurPool``, ``AdaptivePolyphaseSampling``, ``PolyphaseUpsampling``, ``AdaptiveBlurPool``,
``LearnablePolyphaseSampling``, ``FLCPool``, ``HaarPool``, ...; their functionals and helpers stay in
:mod:`antialiased.layers`), :func:`evaluate`, :func:`train` and :func:`export_model` (loaded
on first use: they pull in the data, evaluation and export stacks), the exceptions in
:mod:`antialiased.errors`, and the published package's constructors (``antialiased.resnet50(...)``).
Everything else lives in the subpackages (``antialiased.models``, ``antialiased.evaluation``, ...).
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from antialiased import errors
from antialiased.layers import (
    AdaptiveBlurPool,
    AdaptivePolyphaseSampling,
    ASAPPool,
    BlurPool,
    BlurPool1D,
    BlurPool3D,
    FLCPool,
    HaarPool,
    LearnablePolyphaseSampling,
    LearnablePolyphaseUpsampling,
    PolyphaseConvTranspose2d,
    PolyphaseUpsampling,
    TranslationInvariantPolyphaseSampling,
    binomial_filter,
    blur_pool1d,
    blur_pool2d,
    blur_pool3d,
)
from antialiased.models import (
    AntialiasSummary,
    ModelSpec,
    antialias,
    create_model,
    get_model_spec,
    list_models,
    load_baseline,
)
from antialiased.models import constructors as _constructors
from antialiased.models.constructors import *  # noqa: F401,F403  the paper's 23 constructors (their __all__)

__version__ = "0.1.0"

# Loaded on first use: module path of each (importing them here would pull in every layer above models).
_LAZY = {"evaluate": "antialiased.evaluation", "train": "antialiased.training", "export_model": "antialiased.export"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'antialiased' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "create_model",
    "list_models",
    "get_model_spec",
    "ModelSpec",
    "antialias",
    "AntialiasSummary",
    "load_baseline",
    "evaluate",
    "train",
    "export_model",
    "errors",
    # the layers a user inserts by hand: the paper's blur (and its functionals), then each method's
    "BlurPool",
    "BlurPool1D",
    "BlurPool3D",
    "binomial_filter",
    "blur_pool1d",
    "blur_pool2d",
    "blur_pool3d",
    "AdaptivePolyphaseSampling",
    "PolyphaseUpsampling",
    "PolyphaseConvTranspose2d",
    "AdaptiveBlurPool",
    "LearnablePolyphaseSampling",
    "LearnablePolyphaseUpsampling",
    "FLCPool",
    "ASAPPool",
    "HaarPool",
    "TranslationInvariantPolyphaseSampling",
]
__all__ += _constructors.__all__  # antialiased.resnet50(filter_size=4), ...: named once, in models/constructors.py
