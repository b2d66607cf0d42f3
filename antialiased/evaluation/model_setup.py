"""The model to evaluate: built from a :class:`ModelSource`, put on its device, described for result files."""
from __future__ import annotations

import logging
import os
import re
import warnings
from typing import Any, Sequence

import torch
from torch import nn

from antialiased.errors import DataError
from antialiased.evaluation.config import ModelSource
from antialiased.models import ModelSpec, WeightsSpec, get_model_spec, load_model as build, model_identity
from antialiased.models.weights import IMAGENET_CATEGORIES
from antialiased.models.weights_info import WeightsInfo
from antialiased.support.class_lists import class_difference, format_classes

__all__ = ["model_spec", "weights_spec", "load_model", "result_identity", "wrap_for_devices", "check_model_classes",
           "check_class_identity"]

log = logging.getLogger(__name__)


def model_spec(source: ModelSource) -> ModelSpec:
    """The spec of ``source``'s name and method (raises :class:`~antialiased.errors.ModelError` with close matches)."""
    return get_model_spec(source.name, method=source.aa_method, options=source.aa_options)


def weights_spec(source: ModelSource) -> WeightsSpec:
    """Which weights ``source`` asks for (at most one of --pretrained, --weights, --resume; none: random)."""
    source.validate()
    path = source.weights or source.checkpoint or None
    if source.pretrained:
        return WeightsSpec.pretrained(source.force_nonfinetuned)
    return WeightsSpec.file(path) if path else WeightsSpec.random()


def load_model(source: ModelSource, num_classes: int | None) -> nn.Module:
    """The model of ``source`` with its weights, from the one loader (:func:`antialiased.models.load_model`).

    The model carries ``model_spec`` and ``weights_info`` (where its weights came from). ``num_classes``
    (the dataset's; None: the model's default) sizes a randomly initialized model; a weights file or
    checkpoint keeps its own classifier size (a mismatch with the data is reported next, naming both).

    Raises:
        ModelError, WeightsError, CheckpointError, MissingFileError, DownloadError: with the fix.
    """
    weights = weights_spec(source)
    kwargs = {}
    if weights.kind == "random":
        outputs = "its default classes" if num_classes is None else f"{num_classes} outputs"
        warnings.warn(f"no weights given (--pretrained, --weights or --resume): evaluating a randomly initialized "
                      f"{source.name} with {outputs}", stacklevel=2)
        kwargs = {} if num_classes is None else {"num_classes": num_classes}
    return build(model_spec(source), weights, **kwargs)


def result_identity(model: nn.Module) -> dict[str, Any]:
    """What result files record about the model: its name, architecture, filter size and weights label, and
    its records (:func:`~antialiased.models.model_identity`)."""
    spec, info = model.model_spec, model.weights_info
    return {"model": spec.name, "arch": spec.arch, "filter_size": spec.filter_size, "weights": info.label,
            **model_identity(model)}


def wrap_for_devices(model: nn.Module, device: torch.device, *, data_parallel: bool, channels_last: bool,
                     compile_model: bool) -> nn.Module:
    """Move to ``device`` in eval mode; channels_last, ``torch.compile`` and DataParallel when asked.

    Under torchrun each process evaluates its own shard and the counts are summed, so no DDP
    wrapper is needed for inference (it only synchronizes gradients).
    """
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile_model:
        model = torch.compile(model)
    if data_parallel:
        log.info("evaluating on %d GPUs with DataParallel", torch.cuda.device_count())
        model = nn.DataParallel(model)
    return model


def check_model_classes(model: nn.Module, num_classes: int, crop_size: int, device: torch.device,
                        where: str, class_list: str | os.PathLike | None = None) -> None:
    """Refuse a dataset whose number of classes differs from the model's outputs, before any work."""
    with torch.inference_mode():
        outputs = model(torch.zeros(1, 3, crop_size, crop_size, device=device))
    outputs = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
    if outputs.shape[1] != num_classes and class_list is not None:
        n = outputs.shape[1]
        imagenet = " (ImageNet weights: all 1000 wnids in sorted order, e.g. ls ILSVRC2012/train)" if n == 1000 else ""
        raise DataError(f"--class-list {class_list} names {num_classes} classes but the model outputs {n} logits: the "
                        f"list names every output of the model, one line per output in output order ({n} lines"
                        f"{imagenet}); the data may hold folders for any subset of them")
    if outputs.shape[1] != num_classes:
        raise DataError(f"the dataset {where!r} has {num_classes} classes but the model outputs {outputs.shape[1]} "
                        f"logits. ImageNet models need all 1000 <wnid> folders of the validation set; for a "
                        f"subset, pass --class-list FILE with the model's classes in output order.")



WNID = re.compile(r"n\d{8}")  # a WordNet id, ImageNet's class folder name


def _check_recorded(info: WeightsInfo, classes: list[str], where: str, class_list: str | None) -> None:
    recorded = list(info.classes or ())
    if info.classes is None or recorded == classes:
        return
    trained_on = info.recorded.get("data")
    folder = f" (data folder {trained_on})" if trained_on else ""
    evaluated = f"{where} with --class-list {class_list}" if class_list else where
    raise DataError(f"the weights {info.label} were trained on {len(recorded)} classes {format_classes(recorded)}"
                    f"{folder}, but {evaluated} has {len(classes)} classes {format_classes(classes)}: "
                    f"{class_difference(recorded, classes)}. "
                    f"Evaluate on data with these class folders (--data), pass --class-list FILE naming the "
                    f"model's classes in this order (one per line), or give the weights trained on these classes")


def _imagenet_order(info: WeightsInfo) -> bool:
    """Whether the outputs are ImageNet-1k's (published, torchvision, timm weights, or a model started from them)."""
    return info.categories is not None and tuple(info.categories) == IMAGENET_CATEGORIES


def _check_wnid_order(info: WeightsInfo, classes: list[str], where: str, class_list: str | None) -> None:
    if not _imagenet_order(info) or not classes or not all(WNID.fullmatch(c) for c in classes):
        return
    for before, after in zip(classes, classes[1:]):
        if after < before:
            source = f"--class-list {class_list}" if class_list else f"the classes of {where}"
            raise DataError(f"in {source}, {before} comes before {after}, but the outputs of the ImageNet weights "
                            f"{info.label} follow the sorted order of the WordNet ids (output i is the i-th wnid "
                            f"in sorted order): sort the list (sort FILE), or give all 1000 wnids in sorted order")


def check_class_identity(info: WeightsInfo | None, classes: Sequence[str], *, where: str,
                         class_list: str | os.PathLike | None = None) -> None:
    """Refuse to evaluate ``classes`` (the data's, in target order) with weights that mean other classes.

    - Weights that record their classes (a training checkpoint, weights exported from one:
      ``info.classes``) must be evaluated on the same class list in the same order.
    - ImageNet weights (published, torchvision, timm ImageNet-1k, or an anti-aliased model started
      from them) output the 1000 classes in the sorted order of their WordNet ids, so a list of
      wnids must be in sorted order (a subset in sorted order is fine).

    Files that record no classes (the published files, plain state dicts) are accepted as they are.

    Raises:
        DataError: naming both lists (or their differences), the data folder the weights were trained
            on when recorded, and the fix (the right --data, --class-list or weights).

    Example:
        >>> from antialiased.models.weights_info import random_info, timm_info
        >>> check_class_identity(random_info(), ["n02", "n01"], where="val")   # records nothing: accepted
        >>> check_class_identity(timm_info("resnet18.a1_in1k", 1000, None), ["n01443537", "n01440764"],
        ...                      where="val")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        antialiased.errors.DataError: in the classes of val, n01443537 comes before n01440764, but ...
    """
    if info is None:
        return
    classes = list(classes)
    listing = None if class_list is None else str(class_list)
    _check_recorded(info, classes, where, listing)
    _check_wnid_order(info, classes, where, listing)
