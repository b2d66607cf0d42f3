"""The model to evaluate: built from a :class:`ModelSource`, put on its device, described for result files."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from antialiased.errors import DataError, ModelError
from antialiased.evaluation.config import ModelSource
from antialiased.models import create_model, parse_model_name
from antialiased.models.weights import resolve_published
from antialiased.support.checkpoints import check_arch, extract_state_dict, load_checkpoint, load_into, load_weights_file

__all__ = ["load_model", "model_identity", "wrap_for_devices", "check_model_classes"]

log = logging.getLogger(__name__)


def _parse(name: str) -> tuple[str, int | None]:
    try:
        return parse_model_name(name)
    except ModelError:
        raise
    except ValueError as exc:  # the registry's own error type, until it raises ModelError itself
        raise ModelError(str(exc)) from exc


def _output_size(state_dict: dict[str, torch.Tensor]) -> int | None:
    """Classes of a classifier's state dict: the leading size of its last weight/bias tensor."""
    for key in reversed(list(state_dict)):
        value = state_dict[key]
        if key.endswith(("weight", "bias")) and torch.is_tensor(value) and value.dim() >= 1:
            return int(value.shape[0])
    return None


def _state_dict(source: ModelSource) -> tuple[dict[str, torch.Tensor], str]:
    """The weights of ``--weights`` or ``--resume`` and the label recorded in result files."""
    if source.checkpoint:
        checkpoint = load_checkpoint(source.checkpoint)
        check_arch(checkpoint, source.name, str(source.checkpoint))
        return extract_state_dict(checkpoint, str(source.checkpoint)), f"checkpoint:{Path(source.checkpoint).resolve()}"
    return load_weights_file(source.weights), f"file:{Path(source.weights).expanduser().resolve()}"


def load_model(source: ModelSource, num_classes: int) -> tuple[nn.Module, str]:
    """The model of ``source`` with its weights, and a label of where they came from.

    ``num_classes`` (the dataset's) sizes a randomly initialized model; a weights file or
    checkpoint keeps its own classifier size (a mismatch is reported later, naming both).

    Raises:
        ModelError, WeightsError, CheckpointError, MissingFileError, DownloadError: with the fix.
    """
    source.validate()
    arch, filter_size = _parse(source.name)
    if source.pretrained:
        model = create_model(source.name, pretrained=True, force_nonfinetuned=source.force_nonfinetuned)
        if filter_size is None:
            return model, "torchvision:DEFAULT"
        return model, f"published:{resolve_published(arch, filter_size, source.force_nonfinetuned).name}"
    if not (source.weights or source.checkpoint):
        warnings.warn(f"no weights given (--pretrained, --weights or --resume): evaluating a randomly initialized "
                      f"{source.name} with {num_classes} outputs", stacklevel=2)
        return create_model(source.name, num_classes=num_classes), "random"
    state_dict, label = _state_dict(source)
    model = create_model(source.name, num_classes=_output_size(state_dict) or num_classes)
    load_into(model, state_dict, source=label.split(":", 1)[1])
    return model, label


def model_identity(model: nn.Module, source: ModelSource, weights_label: str) -> dict[str, Any]:
    """What result files record about the model: name, architecture, filter size, weights (and more when known)."""
    arch, filter_size = _parse(source.name)
    identity: dict[str, Any] = {"model": source.name, "arch": arch, "filter_size": filter_size,
                                "weights": weights_label}
    info = getattr(model, "weights_info", None)
    if info is not None:
        identity["weights_info"] = _plain(info)
    return identity


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of a record (dataclass, mapping or plain value)."""
    if hasattr(value, "__dataclass_fields__"):
        value = {k: getattr(value, k) for k in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not callable(v)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


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
