"""torchvision's pretrained baselines: which weights ``pretrained=True`` means, and their download."""
from __future__ import annotations

import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from antialiased.errors import ModelError, WeightsError
from antialiased.models.weights import WeightsDownloadError

__all__ = ["PAPER_BASELINE_WEIGHTS", "baseline_weights", "build_pretrained"]

PAPER_BASELINE_WEIGHTS = "IMAGENET1K_V1"
"""torchvision's weights for a baseline with ``pretrained=True``: what torchvision's legacy
``pretrained=True`` loads, i.e. the baselines the paper reports and fine-tuned from (torchvision's
``DEFAULT`` is a newer recipe for some architectures, e.g. ResNet-50 ``IMAGENET1K_V2``)."""


def baseline_weights(arch: str) -> WeightsEnum:
    """The torchvision weights of the baseline ``arch`` that ``pretrained=True`` loads.

    Example:
        >>> baseline_weights("resnet50")
        ResNet50_Weights.IMAGENET1K_V1
    """
    try:
        enum = torchvision.models.get_model_weights(arch)
    except ValueError:
        raise ModelError(f"torchvision has no pretrained weights for {arch!r}; pass a local file with "
                         f"weights=PATH (--weights PATH) or train it") from None
    return enum[PAPER_BASELINE_WEIGHTS] if PAPER_BASELINE_WEIGHTS in enum.__members__ else enum.DEFAULT


def build_pretrained(arch: str, weights: WeightsEnum, *, progress: bool = True, **kwargs) -> nn.Module:
    """torchvision's ``arch`` with ``weights`` (downloaded once into torch hub's cache).

    Raises:
        WeightsError: ``num_classes`` other than the weights' classes.
        WeightsDownloadError: no network (or the host failed); the message says how to use a local file.
    """
    classes = len(weights.meta.get("categories") or ())
    if classes and kwargs.get("num_classes", classes) != classes:
        raise WeightsError(
            f"torchvision's {arch} weights {weights.name} have {classes} classes, not num_classes="
            f"{kwargs['num_classes']}: leave num_classes out, or load them with {classes} classes and replace the "
            f"classifier afterwards (or start from them with init_from_baseline / --finetune on {classes} classes)")
    try:
        return torchvision.models.get_model(arch, weights=weights, progress=progress, **kwargs)
    except OSError as err:  # URLError is an OSError: no network, DNS, proxy, ...
        url = getattr(getattr(err, "request", None), "full_url", None) or weights.url
        raise WeightsDownloadError(
            f"could not download torchvision's ImageNet weights for {arch!r} ({err}) from {url}. {_offline_advice(arch)}",
            url,
        ) from err
    except RuntimeError as err:
        if not str(err).startswith("invalid hash value"):  # torch hub's checksum test; anything else is a bug
            raise
        raise WeightsDownloadError(
            f"the file downloaded from {weights.url} for {arch!r} does not match its checksum ({err}); nothing was "
            f"kept. Retry (a proxy or an interrupted transfer can cut files short), or {_offline_advice(arch)[0].lower()}"
            f"{_offline_advice(arch)[1:]}", weights.url) from err


def _offline_advice(arch: str) -> str:
    return (f"Without network access, download the file elsewhere and pass it as a local file: weights='path/to/"
            f"{arch}.pth' in create_model(), baseline_weights='path/to/{arch}.pth' in init_from_baseline(), --weights "
            f"PATH (or --baseline-weights PATH with --finetune) on the command line; or put it in torch hub's cache")
