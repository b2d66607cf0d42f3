"""Build the model to export from a registry name and one source of weights."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from antialiased.errors import AntialiasedError, ConfigError, ModelError
from antialiased.models import create_model
from antialiased.support.checkpoints import check_arch, load_checkpoint

__all__ = ["LoadedModel", "load_model"]


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to export, its registry name, and where its weights came from (for the metadata)."""

    model: nn.Module
    name: str
    weights_source: str


def _pretrained_source(model: nn.Module, name: str) -> str:
    # The record the registry attaches to the model names the weights it resolved, e.g.
    # 'published:resnet50_lpf4_finetune' or 'torchvision:IMAGENET1K_V1'.
    label = getattr(getattr(model, "weights_info", None), "label", None)
    return f"pretrained {label}" if isinstance(label, str) and label else f"pretrained weights of {name}"


def load_model(name: str, *, pretrained: bool = False, weights: str | os.PathLike | None = None,
               checkpoint: str | os.PathLike | None = None, num_classes: int | None = None,
               aa_method: str | None = None) -> LoadedModel:
    """``create_model(name)`` with at most one source of weights, in eval mode.

    Args:
        name: any name :func:`antialiased.create_model` knows.
        pretrained: the name's pretrained weights (downloaded once, then cached).
        weights: a local weights file or training checkpoint (strict loading).
        checkpoint: a training checkpoint (``--resume``); its recorded architecture must be ``name``.
        num_classes: build the classifier with this many outputs (default: the model's own, or
            the weights file's where the registry reads it from the file).
        aa_method: the anti-aliasing method of an ``_lpf<N>`` name (as ``create_model``).

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
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    epoch = None
    if checkpoint is not None:  # its recorded architecture first: a clearer error than unfit keys
        state = load_checkpoint(checkpoint)
        check_arch(state, name, str(checkpoint))
        epoch = state.get("epoch")
    try:
        model = create_model(name, pretrained=pretrained, weights=weights or checkpoint, aa_method=aa_method,
                             **kwargs)
    except AntialiasedError:
        raise
    except ValueError as exc:  # the registry's unknown names and argument errors, as ModelError
        raise ModelError(str(exc)) from exc
    if checkpoint is not None:
        source = f"checkpoint {Path(checkpoint)}" + (f" (epoch {epoch})" if isinstance(epoch, int) else "")
    elif weights is not None:
        source = f"file {Path(weights)}"
    elif pretrained:
        source = _pretrained_source(model, name)
    else:
        source = "random initialization"
    return LoadedModel(model.eval(), name, source)
