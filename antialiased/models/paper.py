"""The paper's 23 architectures: the ``"paper"`` family, torchvision's models converted by ``antialias()``.

``<arch>_lpf<N>`` is torchvision's untrained ``<arch>`` (its initialization and keyword arguments
apply: ``num_classes``, ``zero_init_residual``, ...) converted by ``antialias(model, filter_size=N,
method=..., paper_choices=True)``: the one mechanism that anti-aliases any CNN, with the paper's
per-architecture choices (the table and the names are in :mod:`antialiased.models.antialias._paper`,
listed once). The keys are torchvision's. ``<arch>`` is torchvision's baseline.

The family owns its names whatever the method: with ``"blurpool"`` and no options,
``pretrained=True`` loads the paper's published files; with another method (``"aps"``, ...) or
options, the model starts from torchvision's baseline weights, as any converted model does.

What a family's published model has beyond the blur is data here (:data:`PAPER_EXTRAS`):
MobileNet-v2's classifier is a single ``Linear`` (no dropout layer, as the published weights'
``classifier.0`` keys say), and DenseNet files may spell keys the old way. Every model of the
family maps the published key layout (``*.filt`` blur filters, other nesting) onto its keys when it
loads a state dict (:func:`~antialiased.models.keymap.published_layout`).

Example:
    >>> model = PAPER.build(get_model_spec("resnet18_lpf3"))
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
import torchvision
from torch import nn
from torchvision.models import DenseNet, MobileNetV2

from antialiased.errors import ModelError
from antialiased.models import weights
from antialiased.models.antialias._paper import PAPER_TABLE
from antialiased.models.converted import TorchvisionWeights, convert
from antialiased.models.keymap import KeyRule, install_key_remap, published_layout
from antialiased.models.registry import DEFAULT_METHOD, ArchNames, Family, ModelSpec, get_model_spec  # noqa: F401
from antialiased.models.weights_info import WeightsInfo, published_info
from antialiased.support.checkpoints import load_into

__all__ = ["PAPER", "PAPER_ARCHS", "PAPER_EXTRAS", "PaperExtras", "PaperWeights", "upgrade_densenet_state_dict"]

PAPER_ARCHS: tuple[str, ...] = tuple(arch for family in PAPER_TABLE for arch in family.archs)
"""The paper's 23 architectures, in the order of its table."""


@dataclass(frozen=True)
class PaperExtras:
    """What a family's published model differs in from torchvision's, besides the blur.

    Attributes:
        prepare_kwargs: checks or adjusts the torchvision builder's keyword arguments (anti-aliased models).
        restructure: changes torchvision's module layout to the published one, in place, before the
            conversion (MobileNet-v2's classifier).
        key_rules: key layouts of its files mapped onto the model's keys on load (before the published
            layout's mapping), each ``rule(model, state_dict) -> state_dict``.
    """

    prepare_kwargs: Callable[[dict], dict] | None = None
    restructure: Callable[[nn.Module], None] | None = None
    key_rules: tuple[KeyRule, ...] = ()


# --------------------------------------------------------------------------- MobileNet-v2


def _without_dropout(kwargs: dict) -> dict:
    if kwargs.get("dropout", 0.0):
        raise ModelError("the anti-aliased mobilenet_v2 has no dropout layer (as the published model, whose weights "
                         "expect 'classifier.0'); leave out the dropout argument")
    return {**kwargs, "dropout": 0.0}


def _single_linear_classifier(model: MobileNetV2) -> None:
    model.classifier = nn.Sequential(model.classifier[-1])


def _torchvision_classifier(model: nn.Module, state_dict: dict) -> dict:
    """torchvision's ``classifier.1`` (after its dropout) is the single-Linear classifier's ``classifier.0``."""
    expected = model.state_dict()
    if "classifier.0.weight" not in expected or "classifier.1.weight" in expected \
            or "classifier.0.weight" in state_dict or "classifier.1.weight" not in state_dict:
        return state_dict
    return {key.replace("classifier.1.", "classifier.0.", 1) if key.startswith("classifier.1.") else key: value
            for key, value in state_dict.items()}


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


def _legacy_densenet(model: nn.Module, state_dict: dict) -> dict:
    return upgrade_densenet_state_dict(state_dict)


PAPER_EXTRAS: dict[type, PaperExtras] = {
    MobileNetV2: PaperExtras(prepare_kwargs=_without_dropout, restructure=_single_linear_classifier,
                             key_rules=(_torchvision_classifier,)),
    DenseNet: PaperExtras(key_rules=(_legacy_densenet,)),
}
"""torchvision class -> what its published model has beyond the blur (families not listed: nothing)."""


def _extras(arch: str) -> PaperExtras:
    model_class = next(family.model_class for family in PAPER_TABLE if arch in family.archs)
    return PAPER_EXTRAS.get(model_class, PaperExtras())


# --------------------------------------------------------------------------- the family


def _with_key_remap(model: nn.Module, spec: ModelSpec) -> nn.Module:
    rules = _extras(spec.arch).key_rules
    return install_key_remap(model, (*rules, published_layout) if spec.antialiased else rules)


def _build(spec: ModelSpec, **kwargs) -> nn.Module:
    extras = _extras(spec.arch)
    if spec.antialiased and extras.prepare_kwargs is not None:
        kwargs = extras.prepare_kwargs(kwargs)
    model = torchvision.models.get_model(spec.arch, weights=None, **kwargs)
    if spec.antialiased:
        if extras.restructure is not None:
            extras.restructure(model)
        model = convert(model, spec)
    return _with_key_remap(model, spec)


def _published(spec: ModelSpec) -> bool:
    """Whether ``spec`` is the paper's own recipe (its published files are for it)."""
    return spec.antialiased and spec.method == DEFAULT_METHOD and not spec.options


class PaperWeights(TorchvisionWeights):
    """The paper's :class:`~antialiased.models.registry.WeightsSource`: its published files for
    ``<arch>_lpf<N>`` (the fine-tuned one for N = 4 unless ``force_nonfinetuned``), torchvision's
    ``IMAGENET1K_V1`` for the baselines; none of their own for other methods or options."""

    def resolve(self, spec: ModelSpec, force_nonfinetuned: bool = False) -> WeightsInfo | None:
        if _published(spec):
            return published_info(weights.resolve_published(spec.arch, spec.filter_size, force_nonfinetuned))
        return super().resolve(spec, force_nonfinetuned)

    def load(self, spec: ModelSpec, info: WeightsInfo, *, progress: bool = True, **kwargs) -> nn.Module:
        if info.published is None:
            return _with_key_remap(super().load(spec, info, progress=progress, **kwargs), spec)
        model = _build(spec, **kwargs)
        state_dict = weights.load_published(info.published, progress=progress)
        load_into(model, state_dict, source=f"the published weights {info.published.name} for {spec.name}")
        return model


PAPER = Family(name="paper", names=ArchNames(archs=lambda: PAPER_ARCHS), build=_build, weights=PaperWeights())
"""The paper's 23 architectures: baselines and anti-aliased models, every method."""
