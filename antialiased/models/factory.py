"""``create_model``: a name (or :class:`ModelSpec`) in, a model with its identity attached out.

The ``"paper"`` source is defined here: the paper's 23 architectures as anti-aliased models
(``<arch>_lpf<N>``, with the paper's published weights) and as torchvision baselines (``<arch>``,
with torchvision's weights). The other sources (torchvision's and timm's models converted by
``antialias()``) are in :mod:`antialiased.models.converted` and :mod:`antialiased.models._timm`.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from antialiased.errors import ConfigError, ModelError
from antialiased.layers import MAX_FILTER_SIZE
from antialiased.models import _torchvision
from antialiased.models import weights as published
from antialiased.models._heads import classifier_key
from antialiased.models.registry import (
    ModelSpec,
    Source,
    baseline_spec,
    check_recorded_spec,
    get_arch,
    get_model_spec,
    get_source,
    list_archs,
    register_source,
    upgrade_keys,
)
from antialiased.models.weights_info import (
    WeightsInfo,
    attach,
    file_info,
    published_info,
    random_info,
    torchvision_info,
)
from antialiased.support.checkpoints import check_arch, load_into, read_weights_file

__all__ = ["create_model", "get_model", "paper_constructor", "PAPER_SOURCE"]


# --------------------------------------------------------------------------- the paper's source


def _paper_has_baseline(arch: str) -> bool:
    return get_arch(arch).baseline is not None


def _paper_build(spec: ModelSpec, **kwargs) -> nn.Module:
    entry = get_arch(spec.arch)
    if spec.filter_size is None:
        return entry.baseline(**kwargs)
    return entry.build(filter_size=spec.filter_size, **kwargs)


def _paper_pretrained(spec: ModelSpec, force_nonfinetuned: bool = False) -> WeightsInfo:
    if spec.filter_size is None:
        return torchvision_info(_torchvision.baseline_weights(spec.arch))
    return published_info(published.resolve_published(spec.arch, spec.filter_size, force_nonfinetuned))


def _paper_load_pretrained(spec: ModelSpec, info: WeightsInfo, *, progress: bool = True, **kwargs) -> nn.Module:
    if info.torchvision is not None:
        return _torchvision.build_pretrained(spec.arch, info.torchvision, progress=progress, **kwargs)
    model = _paper_build(spec, **kwargs)
    state_dict = upgrade_keys(spec.arch, published.load_published(info.published, progress=progress))
    load_into(model, state_dict, source=f"the published weights {info.published.name} for {spec.name}")
    return model


PAPER_SOURCE = register_source(Source(
    name="paper", prefix="", archs=list_archs, has_baseline=_paper_has_baseline, build=_paper_build,
    pretrained=_paper_pretrained, load_pretrained=_paper_load_pretrained, method="blurpool"))
"""The paper's architectures (every :func:`~antialiased.models.registry.register_model` entry)."""


# --------------------------------------------------------------------------- create_model


def _check_options(spec: ModelSpec, pretrained: bool, weights: Any, force_nonfinetuned: bool) -> None:
    if pretrained and weights is not None:
        raise ConfigError("pass either pretrained=True (download the published weights) or weights=PATH "
                          "(a local file), not both")
    if force_nonfinetuned and not pretrained:
        warnings.warn("force_nonfinetuned only matters with pretrained=True; ignoring it", stacklevel=3)
    elif force_nonfinetuned and not spec.antialiased:
        warnings.warn(f"force_nonfinetuned does not apply to the baseline {spec.arch!r}; ignoring it", stacklevel=3)
    elif force_nonfinetuned and spec.source != PAPER_SOURCE.name:
        warnings.warn(f"force_nonfinetuned chooses among the paper's published files; {spec.describe()} starts "
                      f"from its baseline's weights instead; ignoring it", stacklevel=3)


def _layout(source: Source, spec: ModelSpec, kwargs: dict) -> nn.Module:
    """A model with ``spec``'s state-dict layout, on ``meta`` where the builder allows (nothing allocated)."""
    if source.convert is not None:  # a converted model has its baseline's keys: skip the conversion
        spec = baseline_spec(spec)
    try:
        with torch.device("meta"):
            return source.build(spec, **kwargs)
    except (NotImplementedError, RuntimeError):  # builders that compute on tensors (RegNet's widths)
        return source.build(spec, **kwargs)


def _file_num_classes(source: Source, spec: ModelSpec, state_dict: dict, kwargs: dict) -> int | None:
    """The file's class count where it differs from the model's default (its classifier's leading size)."""
    probe = _layout(source, spec, kwargs)
    key = classifier_key(probe)
    if key is None or key not in state_dict or state_dict[key].dim() < 1:
        return None  # not this architecture's file: loading names the keys that do not fit
    expected = probe.state_dict()[key].shape[0]
    found = int(state_dict[key].shape[0])
    return None if found == expected else found


def _from_file(source: Source, spec: ModelSpec, path: str | os.PathLike, kwargs: dict) -> tuple[nn.Module, WeightsInfo]:
    weights_file = read_weights_file(path)
    # Converted models share their keys across filter sizes and methods: the recorded spec tells them apart.
    check_recorded_spec(weights_file.metadata.get("model_spec"), spec, str(weights_file.path))
    state_dict = upgrade_keys(spec.arch, weights_file.state_dict)
    if "num_classes" not in kwargs:
        num_classes = _file_num_classes(source, spec, state_dict, kwargs)
        if num_classes is not None:
            kwargs = {**kwargs, "num_classes": num_classes}
    model = source.build(spec, **kwargs)
    load_into(model, state_dict, source=str(weights_file.path))
    # Checked after loading: a file of another layout is explained better by the keys that do not fit.
    check_arch(weights_file.metadata, spec.name, str(weights_file.path))
    return model, file_info(weights_file)


def create_model(
    name: str | ModelSpec,
    *,
    pretrained: bool = False,
    weights: str | os.PathLike | None = None,
    force_nonfinetuned: bool = False,
    progress: bool = True,
    aa_method: str | None = None,
    **kwargs,
) -> nn.Module:
    """Build a model by name: ``<arch>`` (baseline) or ``<arch>_lpf<N>`` (anti-aliased); see :func:`list_models`.

    Names: the paper's 23 architectures (its module layout), every torchvision classification
    model, and ``timm/<name>`` (timm installed); ``_lpf<N>`` names other than the paper's are the
    baseline converted by :func:`~antialiased.models.antialias.antialias` (``filter_size=N``,
    ``method=aa_method``). The returned model carries what it is: ``model.model_spec`` (a
    :class:`ModelSpec`: source, filter size, method) and ``model.weights_info`` (a
    :class:`~antialiased.models.weights_info.WeightsInfo`: label, the published, torchvision or timm
    record, categories, classes recorded in a checkpoint, eval transforms).

    Args:
        name: e.g. ``'resnet50_lpf4'``, ``'resnet50'``, ``'efficientnet_b0_lpf3'``, ``'timm/resnet50_lpf4'``.
        pretrained: load ImageNet weights. The paper's anti-aliased names: the published weights
            (the fine-tuned file for filter size 4, else the one trained from scratch). Baselines:
            torchvision's ``IMAGENET1K_V1`` where it exists (the weights the paper's baselines
            used; ``DEFAULT`` otherwise) or timm's pretrained weights. Every other anti-aliased
            name: its baseline's weights, loaded into the converted model (same keys) to fine-tune
            from (``weights_info.kind == "baseline"``).
        weights: path of a local weights file or training checkpoint to load instead. Without
            ``num_classes``, the model gets the file's number of classes. A checkpoint that records
            another spec of the architecture (source, filter size, method) is refused.
        force_nonfinetuned: with ``pretrained``, prefer the paper's from-scratch weights over fine-tuned ones.
        progress: show download progress.
        aa_method: the anti-aliasing method of an ``_lpf<N>`` name (default ``"blurpool"``, the
            paper's): ``"blurpool"``, ``"blur-first"``, ``"aps"`` or ``"aps-lpf"``. For the paper's
            names another method means torchvision's architecture converted with it (no published
            weights). An error for a baseline name.
        **kwargs: passed to the builder, e.g. ``num_classes=10``.

    Raises:
        ModelError: an unknown name, filter size or method, or a model that cannot be anti-aliased.
        WeightsError, CheckpointError, MissingFileError, WeightsDownloadError: weights that do not fit,
            a missing file, a failed download (the message says how to pass a local file).
        MissingDependencyError: a ``timm/`` name without timm.

    Example:
        >>> import torch
        >>> model = create_model("resnet18_lpf4", num_classes=10)
        >>> model(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 10])
        >>> model.model_spec.filter_size, model.weights_info.label, model.weights_info.num_classes
        (4, 'random', 10)
        >>> create_model("mobilenet_v3_small_lpf3", aa_method="aps", num_classes=5).model_spec
        ModelSpec(name='mobilenet_v3_small_lpf3', arch='mobilenet_v3_small', filter_size=3, source='torchvision', method='aps')
    """
    spec = get_model_spec(name, method=aa_method)
    _check_options(spec, pretrained, weights, force_nonfinetuned)
    source = get_source(spec.source)
    if pretrained:
        info = source.pretrained(spec, force_nonfinetuned)
        model = source.load_pretrained(spec, info, progress=progress, **kwargs)
    elif weights is not None:
        model, info = _from_file(source, spec, weights, kwargs)
    else:
        model, info = source.build(spec, **kwargs), random_info()
    return attach(model, spec, info)


get_model = create_model


def paper_constructor(arch: str) -> Callable[..., nn.Module]:
    """The published package's style of constructor, ``arch(pretrained=False, filter_size=4, **kwargs)``."""

    def constructor(pretrained: bool = False, filter_size: int = 4, **kwargs) -> nn.Module:
        if not isinstance(filter_size, int) or isinstance(filter_size, bool) or not 1 <= filter_size <= MAX_FILTER_SIZE:
            raise ModelError(f"filter_size must be an integer from 1 to {MAX_FILTER_SIZE}, got {filter_size!r}")
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
