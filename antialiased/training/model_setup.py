"""The model a run trains: its spec, its classifier size, its starting weights, its wrappers."""
from __future__ import annotations

import torch
from torch import nn

from antialiased.errors import AntialiasedError, ConfigError, ModelError
from antialiased.models import ModelSpec, WeightsSpec, get_model_spec, load_model, model_identity
from antialiased.training.config import ModelConfig

__all__ = ["IMAGENET_CLASSES", "model_spec", "weights_spec", "model_classes", "build_model", "wrap_model",
           "model_identity"]

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


def model_spec(cfg: ModelConfig) -> ModelSpec:
    """The spec of ``cfg``'s name and method (a :class:`~antialiased.errors.ModelError` with close matches)."""
    return get_model_spec(cfg.arch, method=cfg.aa_method, options=cfg.aa_options)


def weights_spec(cfg: ModelConfig) -> WeightsSpec:
    """The starting weights: the baseline's (``--finetune``), the published (``--pretrained``), a file, or random."""
    if cfg.finetune:
        return WeightsSpec.baseline(cfg.baseline_weights)
    if cfg.pretrained:
        return WeightsSpec.pretrained(cfg.force_nonfinetuned)
    return WeightsSpec.file(cfg.weights) if cfg.weights else WeightsSpec.random()


def build_model(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """The model to train, from the one loader: from scratch, the published weights, a local file, or the
    baseline's weights (``--finetune``)."""
    weights = weights_spec(cfg)
    kwargs = {} if weights.kind == "pretrained" else {"num_classes": num_classes}
    try:
        return load_model(model_spec(cfg), weights, **kwargs)
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
