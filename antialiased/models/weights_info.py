"""What a model was loaded with, recorded on the model: ``model.weights_info`` (and ``model.model_spec``).

:func:`~antialiased.models.create_model` resolves the weights once and attaches one
:class:`WeightsInfo` record to the model it returns, as torchvision's weights API and timm's
``pretrained_cfg`` do. Result files, labels, class checks and preprocessing read it from there.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import nn
from torchvision.models import WeightsEnum

from antialiased.errors import WeightsError
from antialiased.models._heads import num_outputs
from antialiased.models.registry import ModelSpec
from antialiased.models.weights import IMAGENET_CATEGORIES, IMAGENET_EVAL_TRANSFORMS, PublishedWeights
from antialiased.support.checkpoints import WeightsFile

__all__ = [
    "WEIGHTS_KINDS",
    "WeightsInfo",
    "attach",
    "model_identity",
    "plain_data",
    "baseline_info",
    "file_info",
    "memory_info",
    "published_info",
    "random_info",
    "timm_info",
    "torchvision_info",
]

WEIGHTS_KINDS = ("published", "torchvision", "timm", "file", "checkpoint", "baseline", "memory", "random")


@dataclass(frozen=True)
class WeightsInfo:
    """One record of the weights a model holds, resolved once when the model was made.

    Attributes:
        kind: ``published`` (the paper's files), ``torchvision`` (a baseline's ImageNet weights),
            ``timm`` (timm's pretrained weights of a ``timm/`` baseline),
            ``file`` (a local weights file), ``checkpoint`` (a training checkpoint: it records its
            epoch), ``baseline`` (an anti-aliased model initialized from its baseline's weights, see
            :attr:`baseline`), ``memory`` (an in-memory state dict or module) or ``random``.
        label: one string naming the weights, for result files and logs:
            ``published:resnet50_lpf4_finetune``, ``torchvision:IMAGENET1K_V1``,
            ``timm:resnet18.a1_in1k`` (timm's name and pretrained tag), ``file:/abs/path``,
            ``checkpoint:/abs/path``, ``baseline:<the baseline's label>``, ``memory:state_dict`` or ``random``.
        path: the local file (absolute), for ``file`` and ``checkpoint``.
        published: the :class:`~antialiased.models.weights.PublishedWeights` record, for ``published``.
        torchvision: torchvision's ``Weights`` member, for ``torchvision``.
        categories: class names in output order where known (ImageNet's for published and torchvision
            weights; a checkpoint's recorded classes), else None.
        classes: the class list a training checkpoint (or exported file) records: the data's class
            folders, in output order; None when the file records none (the published files, bare
            state dicts). Compare it with the data's classes before evaluating or resuming.
        num_classes: outputs of the model's classifier.
        recorded: the file's own record besides the weights (a checkpoint's ``arch``, ``epoch``,
            ``best_acc1``, ``num_classes``, ``classes``, ``args``, ...); empty if none.
        baseline: for ``baseline``, the record of the baseline weights it started from.
        transforms: builds the evaluation preprocessing these weights expect
            (``info.transforms()(pil_image)``); the paper's ImageNet preprocessing for local files and
            random weights (resize 256, center crop 224, ImageNet mean/std).

    Example:
        >>> info = random_info()
        >>> info.label, info.kind, info.classes
        ('random', 'random', None)
        >>> from antialiased.models.weights import get_published
        >>> published_info(get_published("resnet18_lpf3")).to_dict()["label"]
        'published:resnet18_lpf3'
    """

    kind: str
    label: str
    path: Path | None = None
    published: PublishedWeights | None = None
    torchvision: WeightsEnum | None = None
    categories: tuple[str, ...] | None = field(default=None, repr=False)
    classes: tuple[str, ...] | None = field(default=None, repr=False)
    num_classes: int | None = None
    recorded: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    baseline: WeightsInfo | None = None
    transforms: Callable[..., nn.Module] = field(default=IMAGENET_EVAL_TRANSFORMS, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary for result files: label, kind, path, the published/torchvision
        record's name, num_classes, classes (and the baseline's summary for ``baseline``)."""
        tv = self.torchvision
        return {
            "label": self.label,
            "kind": self.kind,
            "path": None if self.path is None else str(self.path),
            "published": None if self.published is None else self.published.name,
            "torchvision": None if tv is None else f"{type(tv).__name__}.{tv.name}",
            "num_classes": self.num_classes,
            "classes": None if self.classes is None else list(self.classes),
            "baseline": None if self.baseline is None else self.baseline.to_dict(),
        }


def published_info(w: PublishedWeights) -> WeightsInfo:
    """The record of one of the paper's published files."""
    return WeightsInfo("published", f"published:{w.name}", published=w, categories=tuple(w.categories),
                       num_classes=w.num_classes, transforms=w.transforms)


def torchvision_info(w: WeightsEnum) -> WeightsInfo:
    """The record of torchvision's weights ``w`` (a member of e.g. ``ResNet50_Weights``)."""
    categories = tuple(w.meta["categories"]) if w.meta.get("categories") else None
    return WeightsInfo("torchvision", f"torchvision:{w.name}", torchvision=w, categories=categories,
                       num_classes=None if categories is None else len(categories), transforms=w.transforms)


def timm_info(name: str, num_classes: int | None, transforms: Callable[..., nn.Module]) -> WeightsInfo:
    """The record of timm's pretrained weights ``name`` (``<arch>.<tag>``) with ``num_classes`` outputs.

    Example:
        >>> timm_info("resnet18.a1_in1k", 1000, IMAGENET_EVAL_TRANSFORMS).label
        'timm:resnet18.a1_in1k'
    """
    categories = IMAGENET_CATEGORIES if num_classes == len(IMAGENET_CATEGORIES) else None
    return WeightsInfo("timm", f"timm:{name}", categories=categories, num_classes=num_classes, transforms=transforms)


def plain_data(value: Any) -> Any:
    """``value`` as plain data, JSON-ready and loadable with ``torch.load(weights_only=True)``.

    0-dim tensors (``best_acc1`` in some checkpoints) become numbers, records with ``to_dict()``
    and dataclasses become dicts, containers are converted item by item, paths and other objects
    become their text; other tensors stay tensors.

    Example:
        >>> plain_data({"arch": "resnet18", "acc": torch.tensor(71.5), "transforms": object})
        {'arch': 'resnet18', 'acc': 71.5, 'transforms': "<class 'object'>"}
    """
    if isinstance(value, torch.Tensor):
        return value.item() if value.dim() == 0 else value
    if hasattr(value, "to_dict") and not isinstance(value, type):
        value = value.to_dict()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _recorded_classes(f: WeightsFile) -> tuple[str, ...] | None:
    classes = f.metadata.get("classes")
    if classes is None:
        return None
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        raise WeightsError(f"{f.path} records 'classes' as {type(classes).__name__}, not a list of class names; "
                           f"re-save it with checkpoint['classes'] = dataset.classes (or without 'classes')")
    return tuple(classes)


def file_info(f: WeightsFile) -> WeightsInfo:
    """The record of a local weights file or training checkpoint, with the classes it records."""
    kind = "checkpoint" if f.is_checkpoint else "file"
    classes = _recorded_classes(f)
    recorded = MappingProxyType({k: plain_data(v) for k, v in f.metadata.items()})
    return WeightsInfo(kind, f"{kind}:{f.path}", path=f.path, categories=classes, classes=classes, recorded=recorded)


def memory_info(what: str) -> WeightsInfo:
    """The record of weights handed over in memory (``what``: ``state_dict`` or ``module``)."""
    return WeightsInfo("memory", f"memory:{what}")


def random_info() -> WeightsInfo:
    """The record of a freshly initialized model."""
    return WeightsInfo("random", "random")


def baseline_info(base: WeightsInfo) -> WeightsInfo:
    """The record of an anti-aliased model initialized from its baseline, whose weights were ``base``."""
    return WeightsInfo("baseline", f"baseline:{base.label}", path=base.path, torchvision=base.torchvision,
                       categories=base.categories, classes=base.classes, recorded=base.recorded,
                       baseline=base, transforms=base.transforms)


def attach(model: nn.Module, spec: ModelSpec, info: WeightsInfo) -> nn.Module:
    """Record ``spec`` and ``info`` on ``model`` (``model.model_spec``, ``model.weights_info``); returns it.

    ``info.num_classes`` is set from the model's classifier.
    """
    model.model_spec = spec
    model.weights_info = dataclasses.replace(info, num_classes=num_outputs(model))
    return model


def model_identity(model: nn.Module) -> dict[str, Any]:
    """What files record about ``model``: ``model_spec`` and ``weights_info`` as plain data (those it has).

    The one record of a model's identity: training checkpoints store it, result files and exported
    files are built on it, and loading a file checks it
    (:func:`~antialiased.models.registry.check_recorded_spec`).

    Example:
        >>> from antialiased.models import create_model
        >>> identity = model_identity(create_model("resnet18_lpf2", num_classes=3))
        >>> identity["model_spec"]["name"], identity["weights_info"]["label"], identity["weights_info"]["num_classes"]
        ('resnet18_lpf2', 'random', 3)
    """
    found = {}
    for name in ("model_spec", "weights_info"):
        value = getattr(model, name, None)
        if value is not None:
            found[name] = plain_data(value)
    return found
