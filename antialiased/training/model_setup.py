"""The model a run trains: its classifier size, its starting weights, its wrappers."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from antialiased.errors import AntialiasedError, ConfigError, ModelError
from antialiased.models import create_model
from antialiased.models.transfer import init_from_baseline
from antialiased.training.config import ModelConfig

__all__ = ["IMAGENET_CLASSES", "model_classes", "build_model", "wrap_model", "model_identity"]

IMAGENET_CLASSES = 1000


def model_classes(cfg: ModelConfig, dataset_classes: int) -> int:
    """Classifier outputs: ImageNet's 1000 when starting from ImageNet weights, else the class folders.

    Example:
        >>> model_classes(ModelConfig("resnet18_lpf4"), 10)
        10
        >>> model_classes(ModelConfig("resnet18_lpf4", pretrained=True), 1000)
        1000
    """
    imagenet_start = cfg.pretrained or (cfg.finetune and not cfg.baseline_weights)
    if imagenet_start:
        flag = "--finetune" if cfg.finetune else "--pretrained"
        if cfg.num_classes not in (None, IMAGENET_CLASSES) or (
                cfg.num_classes is None and dataset_classes != IMAGENET_CLASSES):
            raise ConfigError(f"{flag} starts from ImageNet weights with {IMAGENET_CLASSES} classes, but the data "
                              f"has {dataset_classes} class folders; train from scratch (drop {flag}) on this "
                              f"dataset{' or give --baseline-weights with its classes' if cfg.finetune else ''}")
        return IMAGENET_CLASSES
    n = cfg.num_classes or dataset_classes
    if n < dataset_classes:
        raise ConfigError(f"--num-classes {n} is smaller than the {dataset_classes} class folders of the data")
    return n


def build_model(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """The model to train: from scratch, the published weights, a local file, or the baseline's weights."""
    try:
        if cfg.finetune:
            return init_from_baseline(cfg.arch, baseline_weights=cfg.baseline_weights or "DEFAULT",
                                      num_classes=num_classes, aa_method=cfg.aa_method)
        if cfg.pretrained:
            return create_model(cfg.arch, pretrained=True, force_nonfinetuned=cfg.force_nonfinetuned,
                                aa_method=cfg.aa_method)
        return create_model(cfg.arch, weights=cfg.weights, num_classes=num_classes, aa_method=cfg.aa_method)
    except AntialiasedError:
        raise
    except (ValueError, FileNotFoundError) as exc:  # unknown names, unfit or missing weights
        raise ModelError(f"cannot build {cfg.arch!r}: {exc}") from exc


def wrap_model(model: nn.Module, device: torch.device, *, distributed: bool, data_parallel: bool) -> nn.Module:
    """DDP (one device per process), DataParallel (one process, several GPUs) or the model itself."""
    if distributed:
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if data_parallel:
        return nn.DataParallel(model)
    return model


def _plain(value: Any) -> Any:
    """A weights_only-loadable form of a record: dataclasses become dicts, other objects their text.

    Example:
        >>> _plain({"arch": "resnet18", "filter_size": 4, "transforms": object})
        {'arch': 'resnet18', 'filter_size': 4, 'transforms': "<class 'object'>"}
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def model_identity(model: nn.Module) -> dict[str, Any]:
    """What the model says about itself (``model_spec``, ``weights_info``), for the checkpoint."""
    found = {}
    for name in ("model_spec", "weights_info"):
        value = getattr(model, name, None)
        if value is not None:
            found[name] = _plain(value)
    return found
