"""One flat registry of architectures and the name-based factory over it.

A name is either ``<arch>`` (the torchvision baseline) or ``<arch>_lpf<N>`` (the anti-aliased
model with an ``N``-tap blur filter, N = 1..7). Each family module registers a keyword-only
builder ``builder(*, filter_size, **kwargs) -> nn.Module`` for the anti-aliased variant.
"""
from __future__ import annotations

import difflib
import fnmatch
import re
import warnings
from pathlib import Path
from typing import Callable, Iterable

from torch import nn

from antialiased.layers import MAX_FILTER_SIZE

__all__ = [
    "register_model",
    "create_model",
    "get_model",
    "list_models",
    "list_archs",
    "parse_model_name",
    "paper_constructor",
]

Builder = Callable[..., nn.Module]
StateDictUpgrade = Callable[[dict], dict]

_MODELS: dict[str, Builder] = {}
# arch -> function renaming older key spellings in weight files to the current layout
_UPGRADES: dict[str, StateDictUpgrade] = {}
_NAME = re.compile(r"^(?P<arch>.+?)(?:_lpf(?P<filter_size>\d+))?$")


def register_model(
    name: str | None = None, *, upgrade_state_dict: StateDictUpgrade | None = None
) -> Callable[[Builder], Builder]:
    """Register an anti-aliased builder under ``name`` (default: the function's name).

    The builder is called as ``builder(filter_size=N, **kwargs)``. Names are unique: registering
    one twice is an error, so two modules cannot silently shadow each other.
    ``upgrade_state_dict`` (optional) rewrites legacy key names of weight files before loading.
    """

    def wrapper(fn: Builder) -> Builder:
        key = name or fn.__name__
        if key in _MODELS:
            raise ValueError(f"a model named {key!r} is already registered")
        _MODELS[key] = fn
        if upgrade_state_dict is not None:
            _UPGRADES[key] = upgrade_state_dict
        return fn

    return wrapper


def list_archs() -> list[str]:
    """The registered architecture names (no ``_lpf`` suffix), sorted."""
    return sorted(_MODELS)


def _patterns(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def list_models(
    include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None
) -> list[str]:
    """All model names, optionally filtered by fnmatch patterns (as torchvision and timm do).

    Example:
        >>> list_models("resnet18*")
        ['resnet18', 'resnet18_lpf1', 'resnet18_lpf2', 'resnet18_lpf3', 'resnet18_lpf4', 'resnet18_lpf5', 'resnet18_lpf6', 'resnet18_lpf7']
        >>> list_models("vgg16*", exclude="*_lpf[1-6]")
        ['vgg16', 'vgg16_bn', 'vgg16_bn_lpf7', 'vgg16_lpf7']
    """
    names = [f"{arch}_lpf{n}" for arch in _MODELS for n in range(1, MAX_FILTER_SIZE + 1)] + list(_MODELS)
    include_patterns, exclude_patterns = _patterns(include), _patterns(exclude)
    if include_patterns:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in include_patterns)]
    names = [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in exclude_patterns)]
    return sorted(names)


def _unknown(name: str) -> ValueError:
    close = difflib.get_close_matches(name, list_models(), n=5, cutoff=0.5)
    hint = f" Closest names: {', '.join(close)}." if close else ""
    return ValueError(
        f"unknown model {name!r}.{hint} Names are '<arch>' (torchvision baseline) or "
        f"'<arch>_lpf<N>' (anti-aliased, N=1..{MAX_FILTER_SIZE}); see antialiased.list_models()."
    )


def parse_model_name(name: str) -> tuple[str, int | None]:
    """Split a model name into ``(arch, filter_size)``; ``filter_size`` is None for a baseline.

    Example:
        >>> parse_model_name("resnet50_lpf4")
        ('resnet50', 4)
        >>> parse_model_name("wide_resnet50_2")
        ('wide_resnet50_2', None)
    """
    if not isinstance(name, str):
        raise TypeError(f"a model name must be a string, got {type(name).__name__}")
    match = _NAME.match(name)
    if match is None or match["arch"] not in _MODELS:
        raise _unknown(name)
    if match["filter_size"] is None:
        return match["arch"], None
    filter_size = int(match["filter_size"])
    if not 1 <= filter_size <= MAX_FILTER_SIZE:
        raise ValueError(
            f"filter size {filter_size} in {name!r} is out of range: use _lpf1 to _lpf{MAX_FILTER_SIZE} "
            f"(e.g. {match['arch']}_lpf4)"
        )
    return match["arch"], filter_size


def _baseline(arch: str, *, pretrained: bool, progress: bool, kwargs: dict, local_arg: str = "weights") -> nn.Module:
    import torchvision

    if not pretrained:
        return torchvision.models.get_model(arch, weights=None, **kwargs)
    try:
        return torchvision.models.get_model(arch, weights="DEFAULT", progress=progress, **kwargs)
    except OSError as err:  # URLError is an OSError: no network, DNS, proxy, ...
        from antialiased.models.weights import WeightsDownloadError

        url = getattr(getattr(err, "request", None), "full_url", "torchvision's weights host")
        raise WeightsDownloadError(
            f"could not download torchvision's ImageNet weights for {arch!r} ({err}). Without network "
            f"access, download the file elsewhere and pass it as {local_arg}='path/to/{arch}.pth'",
            url,
        ) from err


def create_model(
    name: str,
    *,
    pretrained: bool = False,
    weights: str | Path | None = None,
    force_nonfinetuned: bool = False,
    progress: bool = True,
    **kwargs,
) -> nn.Module:
    """Build a model by name: ``<arch>`` (torchvision baseline) or ``<arch>_lpf<N>`` (anti-aliased).

    Args:
        name: e.g. ``'resnet50_lpf4'`` or ``'resnet50'``; see :func:`list_models`.
        pretrained: load ImageNet weights: the published anti-aliased weights (the fine-tuned file
            for filter size 4, else the one trained from scratch) or torchvision's for a baseline.
        weights: path of a local weights file (state dict or training checkpoint) to load instead.
        force_nonfinetuned: with ``pretrained``, prefer the from-scratch weights over fine-tuned ones.
        progress: show download progress.
        **kwargs: passed to the builder, e.g. ``num_classes=10``.

    Example:
        >>> import torch
        >>> model = create_model("resnet18_lpf4", num_classes=10)
        >>> model(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    arch, filter_size = parse_model_name(name)
    if pretrained and weights is not None:
        raise ValueError(
            "pass either pretrained=True (download the published weights) or weights=PATH "
            "(a local file), not both"
        )
    if force_nonfinetuned and not pretrained:
        warnings.warn("force_nonfinetuned only matters with pretrained=True; ignoring it", stacklevel=2)
    if filter_size is None:
        if force_nonfinetuned and pretrained:
            warnings.warn(f"force_nonfinetuned does not apply to the baseline {arch!r}; ignoring it", stacklevel=2)
        model = _baseline(arch, pretrained=pretrained, progress=progress, kwargs=kwargs)
    else:
        model = _MODELS[arch](filter_size=filter_size, **kwargs)
        if pretrained:
            from antialiased.models import weights as published  # lazy: optional until needed

            entry = published.resolve_published(arch, filter_size, force_nonfinetuned)
            state_dict = _upgrade(arch, published.load_published(entry, progress=progress))
            published.load_into(model, state_dict, source=f"published weights for {name}")
    if weights is not None:
        from antialiased.models import weights as published

        published.load_into(model, _upgrade(arch, published.load_weights_file(weights)), source=str(weights))
    return model


def _upgrade(arch: str, state_dict: dict) -> dict:
    upgrade = _UPGRADES.get(arch)
    return state_dict if upgrade is None else upgrade(state_dict)


get_model = create_model


def paper_constructor(arch: str) -> Callable[..., nn.Module]:
    """The published package's style of constructor, ``arch(pretrained=False, filter_size=4, **kwargs)``."""

    def constructor(pretrained: bool = False, filter_size: int = 4, **kwargs) -> nn.Module:
        if not isinstance(filter_size, int) or isinstance(filter_size, bool) or not 1 <= filter_size <= MAX_FILTER_SIZE:
            raise ValueError(f"filter_size must be an integer from 1 to {MAX_FILTER_SIZE}, got {filter_size!r}")
        # The published constructors spell it with a leading underscore.
        if "_force_nonfinetuned" in kwargs:
            kwargs["force_nonfinetuned"] = kwargs.pop("_force_nonfinetuned")
        return create_model(f"{arch}_lpf{filter_size}", pretrained=pretrained, **kwargs)

    constructor.__name__ = constructor.__qualname__ = arch
    constructor.__doc__ = (
        f"Anti-aliased {arch} (paper-style constructor): ``create_model('{arch}_lpf<filter_size>', ...)``.\n\n"
        f"    Args:\n"
        f"        pretrained: load the published ImageNet weights.\n"
        f"        filter_size: blur filter taps, 1-{MAX_FILTER_SIZE}.\n"
        f"        **kwargs: as :func:`create_model` (weights, force_nonfinetuned, progress, num_classes, ...).\n"
    )
    return constructor
