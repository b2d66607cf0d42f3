"""torchvision's segmentation models by name: the ``"torchvision-segmentation"`` family.

``fcn_resnet50``, ``fcn_resnet101``, ``deeplabv3_resnet50``, ``deeplabv3_resnet101``,
``deeplabv3_mobilenet_v3_large`` and ``lraspp_mobilenet_v3_large`` are torchvision's models
(random weights, no backbone download: ``weights_backbone=None``); ``<arch>_lpf<N>`` is the model
converted by :func:`~antialiased.models.antialias.antialias` (its downsampling and, with
``upsample=True``, its upsampling sites), ``aa_method=`` choosing the method. Their task is
``"segmentation"``: evaluation and training read per-pixel labels.

Classes: 21 unless ``num_classes`` says otherwise (torchvision's default, VOC's classes), or the
weights' count. The auxiliary head (``aux_classifier``, FCN and DeepLabV3 only) is built when asked
(``aux_loss=True``) and exactly when a weights file holds ``aux_classifier.*`` keys (the family's
``file_kwargs``), so a plain state dict of the unconverted model loads strictly either way.
``pretrained=True`` is torchvision's ``COCO_WITH_VOC_LABELS_V1`` (with its auxiliary head where the
architecture has one), fetched by :func:`~antialiased.models._torchvision.fetch_baseline`; an
``_lpf<N>`` name starts from it.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torchvision
from torch import nn

from antialiased.errors import ModelError
from antialiased.models.converted import TorchvisionWeights, convert
from antialiased.models.registry import ArchNames, Family, ModelSpec

__all__ = ["AUX_PREFIX", "TORCHVISION_SEGMENTATION", "has_aux_head", "segmentation_archs"]

AUX_PREFIX = "aux_classifier."  # the keys of torchvision's auxiliary head


def segmentation_archs() -> list[str]:
    """torchvision's segmentation architectures.

    Example:
        >>> segmentation_archs()[:2]
        ['deeplabv3_mobilenet_v3_large', 'deeplabv3_resnet101']
    """
    return list(torchvision.models.list_models(module=torchvision.models.segmentation))


def has_aux_head(arch: str) -> bool:
    """Whether torchvision's ``arch`` can have an auxiliary head (its builder takes ``aux_loss``).

    Example:
        >>> has_aux_head("fcn_resnet50"), has_aux_head("lraspp_mobilenet_v3_large")
        (True, False)
    """
    return "aux_loss" in inspect.signature(torchvision.models.get_model_builder(arch)).parameters


def _aux_from_keys(spec: ModelSpec, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``aux_loss=True`` when the weights hold the auxiliary head's keys (and the architecture has one)."""
    if has_aux_head(spec.arch) and any(str(key).startswith(AUX_PREFIX) for key in state_dict):
        return {"aux_loss": True}
    return {}


def _build(spec: ModelSpec, **kwargs: Any) -> nn.Module:
    if kwargs.get("weights_backbone") is not None:
        raise ModelError(f"{spec.name!r} is built without downloading a backbone (weights_backbone=None): start from "
                         f"torchvision's segmentation weights with pretrained=True (--pretrained), or pass a local "
                         f"file with weights=PATH (--weights PATH)")
    if kwargs.get("aux_loss") and not has_aux_head(spec.arch):
        raise ModelError(f"{spec.baseline().name!r} has no auxiliary head (torchvision builds none for it); leave "
                         f"aux_loss out")
    kwargs["weights_backbone"] = None
    if not has_aux_head(spec.arch):
        kwargs.pop("aux_loss", None)
    model = torchvision.models.get_model(spec.arch, weights=None, **kwargs)
    return convert(model, spec) if spec.antialiased else model


TORCHVISION_SEGMENTATION = Family(
    name="torchvision-segmentation", names=ArchNames(archs=segmentation_archs), build=_build,
    weights=TorchvisionWeights(), task="segmentation", file_kwargs=_aux_from_keys)
"""torchvision's semantic segmentation models (FCN, DeepLabV3, LR-ASPP), baseline and converted."""
