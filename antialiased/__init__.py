"""antialiased: shift-invariant (anti-aliased) convolutional networks for PyTorch.

Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019.
"""
from antialiased.layers import (
    AdaptivePolyphaseSampling,
    BlurPool,
    BlurPool1D,
    BlurPool3D,
    binomial_filter,
    blur_pool1d,
    blur_pool2d,
    blur_pool3d,
)
from antialiased.models import *  # noqa: F401,F403  (create_model, list_models, the paper's constructors)
from antialiased.models import __all__ as _models_all

__version__ = "0.1.0"

__all__ = [
    "AdaptivePolyphaseSampling",
    "BlurPool",
    "BlurPool1D",
    "BlurPool3D",
    "binomial_filter",
    "blur_pool1d",
    "blur_pool2d",
    "blur_pool3d",
    *_models_all,
]
