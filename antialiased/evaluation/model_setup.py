"""The model to evaluate: built from a :class:`ModelSource`, put on its device, described for result files."""
from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
from torch import nn

from antialiased.errors import DataError
from antialiased.evaluation.config import ModelSource
from antialiased.models import create_model

__all__ = ["load_model", "model_identity", "wrap_for_devices", "check_model_classes"]

log = logging.getLogger(__name__)


def load_model(source: ModelSource, num_classes: int) -> nn.Module:
    """The model of ``source`` with its weights, built by one :func:`~antialiased.models.create_model` call.

    The model carries ``model_spec`` and ``weights_info`` (where its weights came from). ``num_classes``
    (the dataset's) sizes a randomly initialized model; a weights file or checkpoint keeps its own
    classifier size (a mismatch with the data is reported next, naming both).

    Raises:
        ModelError, WeightsError, CheckpointError, MissingFileError, DownloadError: with the fix.
    """
    source.validate()
    path = source.weights or source.checkpoint or None
    if source.pretrained or path:
        return create_model(source.name, pretrained=source.pretrained, weights=path,
                             force_nonfinetuned=source.force_nonfinetuned, aa_method=source.aa_method)
    warnings.warn(f"no weights given (--pretrained, --weights or --resume): evaluating a randomly initialized "
                  f"{source.name} with {num_classes} outputs", stacklevel=2)
    return create_model(source.name, num_classes=num_classes, aa_method=source.aa_method)


def model_identity(model: nn.Module) -> dict[str, Any]:
    """What result files record about the model (read from ``model.model_spec`` and ``model.weights_info``)."""
    spec, info = model.model_spec, model.weights_info
    return {"model": spec.name, "arch": spec.arch, "filter_size": spec.filter_size, "weights": info.label,
            "model_spec": spec.to_dict(), "weights_info": info.to_dict()}


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
                        where: str) -> None:
    """Refuse a dataset whose number of classes differs from the model's outputs, before any work."""
    with torch.inference_mode():
        outputs = model(torch.zeros(1, 3, crop_size, crop_size, device=device))
    outputs = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
    if outputs.shape[1] != num_classes:
        raise DataError(f"the dataset {where!r} has {num_classes} classes but the model outputs {outputs.shape[1]} "
                        f"logits. ImageNet models need all 1000 <wnid> folders of the validation set; for a "
                        f"subset, pass --class-list FILE with the model's classes in output order.")
