"""What the shift protocols check about a model before any work: that it is a classifier, and its layers."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from antialiased.errors import ModelError

__all__ = ["unwrap_model", "classifier_outputs", "check_classifier", "probe_output", "top1"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module whose layers have the user's names: without DataParallel/DDP or ``torch.compile`` wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None)  # torch.compile
        if inner is None and isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            inner = model.module
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def probe_output(model: nn.Module, size: int, device: torch.device | str = "cpu", *, verb: str = "take",
                 fix: str = "check --crop-size") -> Any:
    """The model's output for one zero image of ``size`` x ``size`` pixels (eval and inference mode; the model's
    mode is restored): what the checks made before any data is read look at.

    Raises:
        ModelError: the model cannot ``verb`` such an image; the message ends with ``fix``.

    Example:
        >>> probe_output(nn.Conv2d(3, 4, 3), 8).shape
        torch.Size([1, 4, 6, 6])
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return model(torch.zeros(1, 3, size, size, device=device))
    except RuntimeError as exc:
        raise ModelError(f"the model cannot {verb} a {size}x{size} image ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); {fix}") from exc
    finally:
        model.train(was_training)


def classifier_outputs(output: Any) -> torch.Tensor | None:
    """The (N, classes) logits of a model's output (the first of a tuple, e.g. auxiliary heads), or None."""
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    if torch.is_tensor(output) and output.dim() == 2 and output.is_floating_point():
        return output
    return None


def top1(logits: torch.Tensor) -> torch.Tensor:
    """The top-1 class of each row of (N, classes) logits; a ModelError for any other shape.

    Example:
        >>> top1(torch.tensor([[0.1, 0.9], [2.0, 1.0]])).tolist()
        [1, 0]
    """
    if logits.dim() != 2:
        raise ModelError(f"the shift protocols compare the top-1 classes of a classifier, but the model returns "
                         f"{_describe(logits)} for a batch of {logits.shape[0]} images, not (N, classes) logits")
    return logits.argmax(dim=1)


def _describe(output: Any) -> str:
    if torch.is_tensor(output):
        return f"a tensor of shape {tuple(output.shape)}"
    if isinstance(output, (tuple, list)):
        return f"a {type(output).__name__} of {len(output)} items, the first {_describe(output[0]) if output else 'none'}"
    return f"a {type(output).__name__}"


def check_classifier(model: nn.Module, size: int, device: torch.device | str = "cpu") -> int:
    """The number of classes of ``model``, checked on one zero image of ``size`` x ``size`` pixels.

    Raises:
        ModelError: the model's output is not (N, classes) logits (a segmentation map, features,
            a dict), or the model cannot take an image of that size.

    Example:
        >>> check_classifier(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 7)), 16)
        7
        >>> check_classifier(nn.Conv2d(3, 4, 3), 16)
        Traceback (most recent call last):
        ...
        antialiased.errors.ModelError: the shift protocols compare the top-1 classes of a classifier, but the model returns a tensor of shape (1, 4, 14, 14) for a (1, 3, 16, 16) image, not (N, classes) logits
    """
    output = probe_output(model, size, device, verb="classify")
    logits = classifier_outputs(output)
    if logits is None or logits.shape[0] != 1:
        raise ModelError(f"the shift protocols compare the top-1 classes of a classifier, but the model returns "
                         f"{_describe(output)} for a (1, 3, {size}, {size}) image, not (N, classes) logits")
    return int(logits.shape[1])
