"""The model to export: a registry name and one source of weights, through the one loader."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from torch import nn

from antialiased.errors import ConfigError
from antialiased.models import WeightsSpec, get_model_spec, load_model as build
from antialiased.support.checkpoints import check_arch, load_checkpoint
from antialiased.training.checkpoint import MID_EPOCH_KEY, describe_progress

__all__ = ["LoadedModel", "load_model"]


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to export, its registry name, and where its weights came from (for the metadata)."""

    model: nn.Module
    name: str
    weights_source: str


def _weights_source(model: nn.Module) -> str:
    """Where the weights came from, for the metadata, read from the record the loader attached."""
    info = model.weights_info
    if info.kind == "checkpoint":  # a mid-epoch recovery checkpoint says how far into its epoch it was written
        known = "epoch" in info.recorded or MID_EPOCH_KEY in info.recorded
        return f"checkpoint {info.path}" + (f" ({describe_progress(info.recorded)})" if known else "")
    if info.kind == "file":
        return f"file {info.path}"
    # e.g. 'published:resnet50_lpf4_finetune', 'torchvision:IMAGENET1K_V1', 'baseline:timm:...'
    return "random initialization" if info.kind == "random" else f"pretrained {info.label}"


def load_model(name: str, *, pretrained: bool = False, weights: str | os.PathLike | None = None,
               checkpoint: str | os.PathLike | None = None, num_classes: int | None = None,
               aa_method: str | None = None, aa_options: Mapping[str, Any] | None = None) -> LoadedModel:
    """The model to export: :func:`antialiased.models.load_model` with at most one source of weights, in eval mode.

    Args:
        name: any name :func:`antialiased.create_model` knows.
        pretrained: the name's pretrained weights (downloaded once, then cached).
        weights: a local weights file or training checkpoint (strict loading).
        checkpoint: a training checkpoint (``--resume``); its recorded architecture must be ``name``.
        num_classes: build the classifier with this many outputs (default: the model's own, or
            the weights file's).
        aa_method: the anti-aliasing method of an ``_lpf<N>`` name (as ``create_model``).
        aa_options: its ``antialias()`` options (as ``create_model``).

    Raises:
        ConfigError: more than one source of weights.
        ModelError: an unknown name or a model that cannot be built as asked.
        WeightsError / CheckpointError / MissingFileError: weights that are missing or do not fit.

    Example:
        >>> loaded = load_model("resnet18_lpf2", num_classes=10)
        >>> loaded.weights_source, loaded.model.fc.out_features, loaded.model.training
        ('random initialization', 10, False)
    """
    given = [flag for flag, value in (("--pretrained", pretrained), ("--weights", weights),
                                      ("--resume", checkpoint)) if value]
    if len(given) > 1:
        raise ConfigError(f"give one source of weights, not {' and '.join(given)}")
    spec = get_model_spec(name, method=aa_method, options=aa_options)
    if checkpoint is not None:  # its recorded architecture first: a clearer error than unfit keys
        check_arch(load_checkpoint(checkpoint), name, str(checkpoint))
    path = weights or checkpoint
    choice = WeightsSpec.pretrained() if pretrained else WeightsSpec.file(path) if path else WeightsSpec.random()
    model = build(spec, choice, **({} if num_classes is None else {"num_classes": num_classes}))
    return LoadedModel(model.eval(), spec.name, _weights_source(model))
