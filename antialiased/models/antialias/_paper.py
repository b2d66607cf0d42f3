"""The paper's per-architecture choices, as data (Zhang 2019, as the published models implement them).

``antialias()`` applies the generic recipe (``_methods``) everywhere; for torchvision instances of
the paper's architectures it first looks a site up here (by the model's class and the site's
path, fnmatch patterns), so that ``antialias(torchvision.models.resnet50(), filter_size=N)``
computes what the published ``resnet50`` anti-aliased with ``filt_size=N`` computes.

Where an architecture has no row for a site, the paper's choice *is* the generic recipe (listed in
``GENERIC`` for the docs). The full table is in :data:`PAPER_TABLE` (and the README).

Example:
    >>> import torchvision
    >>> choices = paper_choices(torchvision.models.resnet18())
    >>> choices["maxpool"].pool_kernel, choices["maxpool"].pool_padding
    (2, 0)
    >>> find_choice(paper_choices(torchvision.models.densenet121()), "features.transition2.pool").blur_only
    True
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torchvision
from torch import nn

from antialiased.models.antialias._types import PaperChoice

__all__ = ["PaperArchitecture", "PAPER_TABLE", "paper_choices", "find_choice", "table_markdown"]


@dataclass(frozen=True)
class PaperArchitecture:
    """One family of the paper: the torchvision class, its archs, its site choices and the generic ones."""

    family: str
    model_class: type
    archs: tuple[str, ...]
    choices: dict[str, PaperChoice]
    generic: tuple[str, ...]  # what the generic recipe does there, in words (for the docs)


PAPER_TABLE: tuple[PaperArchitecture, ...] = (
    PaperArchitecture(
        "ResNet, ResNeXt, Wide ResNet", torchvision.models.ResNet,
        ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
         "wide_resnet50_2", "wide_resnet101_2"),
        {"maxpool": PaperChoice("stem max-pool: MaxPool(3, s2, p1) -> MaxPool(2, s1) + blur(2), the published "
                                "2x2 window", pool_kernel=2, pool_padding=0)},
        ("stem conv (7x7, s2): kept strided",
         "strided 3x3 conv (BasicBlock conv1, Bottleneck conv2): stride 1 -> BN -> ReLU -> blur(2)",
         "shortcut 1x1 conv (s2): blur(2) -> 1x1 conv (stride 1) -> BN"),
    ),
    PaperArchitecture(
        "DenseNet", torchvision.models.DenseNet, ("densenet121", "densenet161", "densenet169", "densenet201"),
        {"features.pool0": PaperChoice("stem max-pool: MaxPool(3, s2, p1) -> MaxPool(3, s1, p1) + blur(2) (published "
                                       "as features.max0, features.pool0)"),
         "features.transition*.pool": PaperChoice("transition AvgPool(2, s2) -> blur(2)", blur_only=True)},
        ("stem conv (7x7, s2): kept strided",),
    ),
    PaperArchitecture(
        "AlexNet", torchvision.models.AlexNet, ("alexnet",),
        {"features.0": PaperChoice("conv1 (11x11, s4): stride 2 -> ReLU -> blur(2) (half the stride stays in "
                                   "the conv, as published)", keep_stride=2, convert_stem=True)},
        ("max-pools: MaxPool(3, s2) -> MaxPool(3, s1) + blur(2)",),
    ),
    PaperArchitecture(
        "VGG (with and without BN)", torchvision.models.VGG,
        ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"),
        {},
        ("max-pools: MaxPool(2, s2) -> MaxPool(2, s1) + blur(2)",),
    ),
    PaperArchitecture(
        "MobileNet-v2", torchvision.models.MobileNetV2, ("mobilenet_v2",),
        {},
        ("stem conv (3x3, s2): kept strided",
         "strided depthwise conv: stride 1 -> BN -> ReLU6 -> blur(2), before the 1x1 projection"),
    ),
)


def paper_choices(model: nn.Module) -> dict[str, PaperChoice]:
    """The paper's site choices for ``model`` (pattern -> choice); empty unless it is one of its classes."""
    for arch in PAPER_TABLE:
        if type(model) is arch.model_class:
            return arch.choices
    return {}


def find_choice(choices: dict[str, PaperChoice], path: str) -> PaperChoice | None:
    """The choice whose pattern matches ``path`` (None if none does)."""
    return next((choice for pattern, choice in choices.items() if fnmatch.fnmatchcase(path, pattern)), None)


def table_markdown() -> str:
    """The table of the paper's choices, as Markdown (for the README)."""
    rows = ["| Family | Architectures | Site: the paper's choice |", "|---|---|---|"]
    for arch in PAPER_TABLE:
        notes = [f"`{p}`: {c.note}" for p, c in arch.choices.items()] + list(arch.generic)
        rows.append(f"| {arch.family} | {', '.join(arch.archs)} | {'<br>'.join(notes)} |")
    return "\n".join(rows)
