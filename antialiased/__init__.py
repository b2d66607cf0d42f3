"""antialiased: shift-invariant (anti-aliased) convolutional networks for PyTorch.

Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019.
"""
from antialiased.layers import (
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
from antialiased.models.antialias import AntialiasSummary, antialias  # noqa: F401  (anti-alias any CNN)

__version__ = "0.1.0"

__all__ = [
    "BlurPool",
    "BlurPool1D",
    "BlurPool3D",
    "binomial_filter",
    "blur_pool1d",
    "blur_pool2d",
    "blur_pool3d",
    *_models_all,
]
