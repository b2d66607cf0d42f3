"""The paper's 23 anti-aliased architectures: torchvision's models converted by ``antialias()``.

Each ``<arch>_lpf<N>`` builder makes torchvision's untrained ``<arch>`` (its initialization and
keyword arguments apply: ``num_classes``, ``zero_init_residual``, ``replace_stride_with_dilation``,
...) and converts it with :func:`antialias_published`, which is
``antialias(model, filter_size=N, layout="published")``: the one mechanism that anti-aliases any
CNN, with the paper's per-architecture choices (the table and the architecture names are in
:mod:`antialiased.models.antialias._paper`, listed once) and the published models' module
nesting, whose state dict saves each blur's ``filt``, so the paper's weight files load strictly.

What a family's published model has beyond the blur is data here (:data:`PUBLISHED_EXTRAS`):
MobileNet-v2's classifier is a single ``Linear`` (no dropout layer, as the published weights'
``classifier.0`` keys say), and DenseNet weight files may spell keys the old way.

Example:
    >>> import torchvision
    >>> model = antialias_published(torchvision.models.resnet18(), filter_size=3)
    >>> type(model).__name__, type(model.maxpool[1]).__name__, tuple(model.maxpool[1].filt.shape)
    ('ResNet', 'BlurPool', (64, 1, 3, 3))
    >>> [change.path for change in model.antialias_summary.changed][:3]
    ['maxpool', 'layer2.0.conv1', 'layer2.0.downsample.0']
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import DenseNet, MobileNetV2

from antialiased.errors import ModelError
from antialiased.models.antialias import antialias
from antialiased.models.antialias._paper import PAPER_TABLE, PaperArchitecture
from antialiased.models.registry import register_torchvision_family

__all__ = ["PublishedExtras", "PUBLISHED_EXTRAS", "antialias_published", "upgrade_densenet_state_dict"]


@dataclass(frozen=True)
class PublishedExtras:
    """What a family's published model differs in from torchvision's, besides the blur.

    Attributes:
        prepare_kwargs: checks or adjusts the torchvision builder's keyword arguments.
        restructure: changes torchvision's module layout to the published one, in place, before
            the conversion (MobileNet-v2's classifier).
        upgrade_state_dict: renames legacy key spellings of weight files.
    """

    prepare_kwargs: Callable[[dict], dict] | None = None
    restructure: Callable[[nn.Module], None] | None = None
    upgrade_state_dict: Callable[[dict], dict] | None = None


def _family(model: nn.Module) -> PaperArchitecture:
    family = next((f for f in PAPER_TABLE if type(model) is f.model_class), None)
    if family is None:
        classes = ", ".join(f.model_class.__name__ for f in PAPER_TABLE)
        raise ModelError(
            f"antialias_published() takes torchvision's model of one of the paper's architectures ({classes}), "
            f"got {type(model).__name__}; use antialiased.antialias(model) for any other CNN"
        )
    return family


def antialias_published(model: nn.Module, *, filter_size: int = 4) -> nn.Module:
    """Turn torchvision's (untrained) model of a paper architecture into the paper's anti-aliased one.

    In place: ``antialias(model, filter_size=filter_size, layout="published")`` after the family's
    :attr:`PublishedExtras.restructure`; returns the model (same class, with ``antialias_summary``).

    Raises:
        ModelError: ``model`` is not torchvision's class of one of the paper's architectures.
    """
    extras = PUBLISHED_EXTRAS.get(_family(model).model_class, PublishedExtras())
    if extras.restructure is not None:
        extras.restructure(model)
    return antialias(model, filter_size=filter_size, method="blurpool", paper_choices=True, layout="published")


# --------------------------------------------------------------------------- MobileNet-v2


def _without_dropout(kwargs: dict) -> dict:
    if kwargs.get("dropout", 0.0):
        raise ModelError(
            "the anti-aliased mobilenet_v2 has no dropout layer (as the published model, whose weights "
            "expect 'classifier.0'); leave out the dropout argument"
        )
    return {**kwargs, "dropout": 0.0}


def _single_linear_classifier(model: MobileNetV2) -> None:
    model.classifier = nn.Sequential(model.classifier[-1])


# --------------------------------------------------------------------------- DenseNet

# Older DenseNet weight files (torchvision's first ones, and the published loader's input) spell
# 'denselayer1.norm.1.weight' where the modules now say 'denselayer1.norm1.weight'.
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def upgrade_densenet_state_dict(state_dict: dict) -> dict:
    """Rename legacy DenseNet keys (``norm.1.weight`` -> ``norm1.weight``); other keys pass unchanged.

    Files saved before PyTorch 0.4.1 also lack BN's ``num_batches_tracked``; it is added as 0,
    which is what ``BatchNorm`` itself does when loading such files.

    Example:
        >>> list(upgrade_densenet_state_dict({"features.denseblock1.denselayer2.conv.2.weight": 0, "classifier.bias": 1}))
        ['features.denseblock1.denselayer2.conv2.weight', 'classifier.bias']
    """
    upgraded = {}
    for key, value in state_dict.items():
        match = _LEGACY_KEY.match(key)
        upgraded[match[1] + match[2] if match else key] = value
    for key in list(upgraded):
        if key.endswith(".running_mean"):
            upgraded.setdefault(key[: -len("running_mean")] + "num_batches_tracked", torch.tensor(0))
    return upgraded


PUBLISHED_EXTRAS: dict[type, PublishedExtras] = {
    MobileNetV2: PublishedExtras(prepare_kwargs=_without_dropout, restructure=_single_linear_classifier),
    DenseNet: PublishedExtras(upgrade_state_dict=upgrade_densenet_state_dict),
}
"""torchvision class -> what its published model has beyond the blur (families not listed: nothing)."""


def _register() -> None:
    for family in PAPER_TABLE:
        extras = PUBLISHED_EXTRAS.get(family.model_class, PublishedExtras())
        register_torchvision_family(family.archs, antialias_published, prepare_kwargs=extras.prepare_kwargs,
                                    upgrade_state_dict=extras.upgrade_state_dict)


_register()
