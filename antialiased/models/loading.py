"""The one loader: ``load_model(spec, weights)`` builds a spec's model and fills it; ``create_model`` is its front.

Evaluation, training, export and the audit all come here with a :class:`ModelSpec` and a
:class:`WeightsSpec` (random, pretrained, a local file or checkpoint, or a baseline's weights):

    >>> model = load_model(get_model_spec("resnet18_lpf2"), WeightsSpec.random(), num_classes=10)
    >>> model.model_spec.name, model.weights_info.label, model.fc.out_features
    ('resnet18_lpf2', 'random', 10)

The family builds the model (``family.build(spec)``) and knows its pretrained weights
(``family.weights``); an anti-aliased name without weights of its own starts from its
baseline's, loaded by :func:`~antialiased.models.transfer.load_baseline`. The model carries what
it is: ``model.model_spec`` and ``model.weights_info``.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from antialiased.errors import ConfigError, ModelError, WeightsError
from antialiased.models._heads import classifier_key
from antialiased.models.registry import Family, ModelSpec, check_recorded_spec, get_family, get_model_spec
from antialiased.models.transfer import load_baseline
from antialiased.models.weights_info import WeightsInfo, attach, baseline_info, file_info, memory_info, random_info
from antialiased.support.checkpoints import check_arch, load_into, read_weights_file

__all__ = ["WEIGHT_CHOICES", "WeightsSpec", "create_model", "init_from_baseline", "load_model"]

WEIGHT_CHOICES = ("random", "pretrained", "file", "baseline")


@dataclass(frozen=True)
class WeightsSpec:
    """Which weights :func:`load_model` puts into the model.

    Attributes:
        kind: ``"random"`` (the builder's initialization), ``"pretrained"`` (the family's pretrained
            weights: the paper's published files, torchvision's or timm's), ``"file"`` (a local
            weights file or training checkpoint: ``path``), ``"baseline"`` (the anti-aliased model
            started from its baseline's weights: those of the file ``path``, else the baseline's
            pretrained ones: the paper's fine-tuning start).
        path: the file, for ``"file"`` and (optionally) ``"baseline"``.
        force_nonfinetuned: with ``"pretrained"``, the paper's from-scratch files over fine-tuned ones.

    Example:
        >>> WeightsSpec.file("w.pth"), WeightsSpec.baseline().describe()
        (WeightsSpec(kind='file', path='w.pth', force_nonfinetuned=False), "the baseline's pretrained weights")
    """

    kind: str = "random"
    path: str | os.PathLike | None = None
    force_nonfinetuned: bool = False

    def __post_init__(self) -> None:
        if self.kind not in WEIGHT_CHOICES:
            raise ConfigError(f"weights kind must be one of {', '.join(WEIGHT_CHOICES)}, got {self.kind!r}")
        if (self.kind == "file") != bool(self.path) and self.kind != "baseline":
            raise ConfigError(f"{self.kind!r} weights {'need' if self.kind == 'file' else 'take no'} a path")
        if self.force_nonfinetuned and self.kind != "pretrained":
            raise ConfigError("force_nonfinetuned chooses among pretrained weights; it needs kind 'pretrained'")

    @classmethod
    def random(cls) -> WeightsSpec:
        return cls("random")

    @classmethod
    def pretrained(cls, force_nonfinetuned: bool = False) -> WeightsSpec:
        return cls("pretrained", force_nonfinetuned=force_nonfinetuned)

    @classmethod
    def file(cls, path: str | os.PathLike) -> WeightsSpec:
        return cls("file", path)

    @classmethod
    def baseline(cls, path: str | os.PathLike | None = None) -> WeightsSpec:
        return cls("baseline", path or None)

    def describe(self) -> str:
        """In words, for messages."""
        if self.kind == "baseline":
            return f"the baseline's weights in {self.path}" if self.path else "the baseline's pretrained weights"
        return {"random": "random initialization", "pretrained": "pretrained weights"}.get(self.kind, f"{self.path}")


# --------------------------------------------------------------------------- the loaders


def _meta_model(family: Family, spec: ModelSpec, kwargs: dict) -> nn.Module:
    """``spec``'s model on ``meta`` where the builder allows (nothing allocated)."""
    try:
        with torch.device("meta"):
            return family.build(spec, **kwargs)
    except (NotImplementedError, RuntimeError):  # builders that compute on tensors (RegNet's widths)
        return family.build(spec, **kwargs)


def _file_num_classes(family: Family, spec: ModelSpec, state_dict: dict, kwargs: dict) -> dict:
    """``kwargs`` with what the file implies (the family's ``file_kwargs``; given ``kwargs`` win) and its class
    count where it differs from the model's default (its classifier's size)."""
    if family.file_kwargs is not None:
        kwargs = {**family.file_kwargs(spec, state_dict), **kwargs}
    if "num_classes" in kwargs:
        return kwargs
    probe = _meta_model(family, spec, kwargs)
    remap = getattr(probe, "key_remap", None)
    try:
        state_dict = remap.apply(probe, dict(state_dict)) if remap is not None else state_dict
    except WeightsError:
        return kwargs  # not this architecture's file: loading names what does not fit
    key = classifier_key(probe)
    if key is None or key not in state_dict or state_dict[key].dim() < 1:
        return kwargs
    found = int(state_dict[key].shape[0])
    return kwargs if found == probe.state_dict()[key].shape[0] else {**kwargs, "num_classes": found}


def _random(family: Family, spec: ModelSpec, weights: WeightsSpec, progress: bool, kwargs: dict):
    return family.build(spec, **kwargs), random_info()


def _from_file(family: Family, spec: ModelSpec, weights: WeightsSpec, progress: bool, kwargs: dict):
    weights_file = read_weights_file(weights.path)
    # Converted models share their keys across filter sizes and methods: the recorded spec tells them apart.
    check_recorded_spec(weights_file.metadata.get("model_spec"), spec, str(weights_file.path))
    model = family.build(spec, **_file_num_classes(family, spec, weights_file.state_dict, kwargs))
    load_into(model, weights_file.state_dict, source=str(weights_file.path))
    # Checked after loading: a file of another layout is explained better by the keys that do not fit.
    check_arch(weights_file.metadata, spec.name, str(weights_file.path))
    return model, file_info(weights_file)


def _start_from(family: Family, spec: ModelSpec, state_dict: Mapping[str, torch.Tensor], base: WeightsInfo,
                kwargs: dict):
    """``spec``'s model filled with its baseline's ``state_dict`` (described by ``base``)."""
    model = family.build(spec, **_file_num_classes(family, spec, dict(state_dict), kwargs))
    load_baseline(model, state_dict, source=f"the baseline weights {base.label}")
    return model, baseline_info(base)


def _pretrained(family: Family, spec: ModelSpec, weights: WeightsSpec, progress: bool, kwargs: dict):
    source = family.weights
    info = None if source is None else source.resolve(spec, weights.force_nonfinetuned)
    if info is not None:
        return source.load(spec, info, progress=progress, **kwargs), info
    if source is None or not spec.antialiased:
        raise WeightsError(f"{spec.name!r} has no pretrained weights; train it, or pass a local file with "
                           f"weights=PATH (--weights PATH)")
    if weights.force_nonfinetuned:
        warnings.warn(f"force_nonfinetuned chooses among the paper's published files; {spec.describe()} starts "
                      f"from its baseline's weights instead; ignoring it", stacklevel=4)
    baseline, base = _pretrained(family, spec.baseline(), WeightsSpec.pretrained(), progress, kwargs)
    return _start_from(family, spec, baseline.state_dict(), base, kwargs)


def _refuse_baseline(spec: ModelSpec) -> None:
    if not spec.antialiased:
        raise ModelError(f"starting from the baseline's weights makes an anti-aliased model from its baseline; "
                         f"{spec.name!r} is the baseline itself. Use an anti-aliased name such as "
                         f"'{ModelSpec(spec.family, spec.arch, 4).name}'")


def _from_baseline(family: Family, spec: ModelSpec, weights: WeightsSpec, progress: bool, kwargs: dict):
    _refuse_baseline(spec)
    start = WeightsSpec.file(weights.path) if weights.path else WeightsSpec.pretrained()
    baseline = load_model(spec.baseline(), start, progress=progress, **kwargs)
    return _start_from(family, spec, baseline.state_dict(), baseline.weights_info, kwargs)


_LOADERS = {"random": _random, "pretrained": _pretrained, "file": _from_file, "baseline": _from_baseline}


def load_model(spec: ModelSpec | str, weights: WeightsSpec | None = None, *, progress: bool = True,
               **kwargs: Any) -> nn.Module:
    """Build ``spec``'s model and fill it with ``weights``: the one way a model is made from a name.

    Args:
        spec: a :class:`ModelSpec` (or a name, resolved by :func:`get_model_spec`).
        weights: which weights (default: random initialization).
        progress: show download progress.
        **kwargs: the builder's (e.g. ``num_classes``; default for a file: the file's).

    Returns:
        The model, with ``model.model_spec`` and ``model.weights_info``.

    Raises:
        ModelError, WeightsError, CheckpointError, MissingFileError, WeightsDownloadError: with the fix.
    """
    spec = get_model_spec(spec)
    weights = weights if weights is not None else WeightsSpec()
    model, info = _LOADERS[weights.kind](get_family(spec.family), spec, weights, progress, kwargs)
    return attach(model, spec, info)


# --------------------------------------------------------------------------- by name


def _weights_of(spec: ModelSpec, pretrained: bool, path: Any, force_nonfinetuned: bool) -> WeightsSpec:
    if pretrained and path is not None:
        raise ConfigError("pass either pretrained=True (download the published weights) or weights=PATH "
                          "(a local file), not both")
    if force_nonfinetuned and not pretrained:
        warnings.warn("force_nonfinetuned only matters with pretrained=True; ignoring it", stacklevel=3)
    elif force_nonfinetuned and not spec.antialiased:
        warnings.warn(f"force_nonfinetuned does not apply to the baseline {spec.arch!r}; ignoring it", stacklevel=3)
    if pretrained:
        return WeightsSpec.pretrained(force_nonfinetuned and spec.antialiased)
    return WeightsSpec.file(path) if path is not None else WeightsSpec.random()


def create_model(
    name: str | ModelSpec,
    *,
    pretrained: bool = False,
    weights: str | os.PathLike | None = None,
    force_nonfinetuned: bool = False,
    progress: bool = True,
    aa_method: str | None = None,
    aa_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a model by name: ``<arch>`` (baseline) or ``<arch>_lpf<N>`` (anti-aliased); see :func:`list_models`.

    Names: the paper's 23 architectures, every other torchvision classification model and
    ``timm/<name>`` (timm installed); each ``_lpf<N>`` name is its baseline converted by
    :func:`~antialiased.models.antialias.antialias` (``filter_size=N``, ``method=aa_method``,
    ``**aa_options``; the paper's per-architecture choices apply to its architectures). The model
    carries what it is: ``model.model_spec`` (a :class:`ModelSpec`) and ``model.weights_info`` (a
    :class:`~antialiased.models.weights_info.WeightsInfo`: label, record, categories, classes
    recorded in a checkpoint, eval transforms).

    Args:
        name: e.g. ``'resnet50_lpf4'``, ``'resnet50'``, ``'efficientnet_b0_lpf3'``, ``'timm/resnet50_lpf4'``.
        pretrained: load ImageNet weights. The paper's anti-aliased names with the paper's method: its
            published weights (the fine-tuned file for filter size 4, else the one trained from
            scratch). Baselines: torchvision's ``IMAGENET1K_V1`` where it exists (the weights the
            paper's baselines used; ``DEFAULT`` otherwise) or timm's. Every other anti-aliased name
            (other methods too): its baseline's weights, loaded into the converted model to fine-tune
            from (``weights_info.kind == "baseline"``).
        weights: path of a local weights file or training checkpoint to load instead. Without
            ``num_classes``, the model gets the file's number of classes. A checkpoint that records
            another spec of the architecture (filter size, method, options) is refused. Files in the
            paper's published layout load into the paper's models.
        force_nonfinetuned: with ``pretrained``, prefer the paper's from-scratch weights over fine-tuned ones.
        progress: show download progress.
        aa_method: the anti-aliasing method of an ``_lpf<N>`` name (default ``"blurpool"``, the
            paper's): ``"blurpool"``, ``"blur-first"``, ``"aps"``, ``"aps-lpf"``, or issue 19's
            ``"adaptive"``, ``"lps"``, ``"lps-lpf"``, ``"flc"``, ``"asap"``, ``"wavelet"``, ``"tips"``
            (docs/methods.md; those without a filter ignore N). An error for a baseline name.
        aa_options: ``antialias()`` keyword options of an ``_lpf<N>`` name (e.g. ``{"pad_type": "zero"}``),
            the method's own included (``{"groups": 4}`` for adaptive).
        **kwargs: passed to the builder, e.g. ``num_classes=10``.

    Raises:
        ModelError: an unknown name, filter size, method or option, or a model that cannot be anti-aliased.
        WeightsError, CheckpointError, MissingFileError, WeightsDownloadError: weights that do not fit,
            a missing file, a failed download (the message says how to pass a local file).
        MissingDependencyError: a ``timm/`` name without timm.

    Example:
        >>> model = create_model("resnet18_lpf4", num_classes=10)
        >>> model(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 10])
        >>> model.model_spec.filter_size, model.weights_info.label, model.weights_info.num_classes
        (4, 'random', 10)
        >>> str(create_model("mobilenet_v3_small_lpf3", aa_method="aps", num_classes=5).model_spec)
        'mobilenet_v3_small_lpf3'
    """
    spec = get_model_spec(name, method=aa_method, options=aa_options)
    return load_model(spec, _weights_of(spec, pretrained, weights, force_nonfinetuned), progress=progress, **kwargs)


def init_from_baseline(
    name: str | ModelSpec,
    *,
    baseline_weights: str | os.PathLike | nn.Module | Mapping[str, torch.Tensor] = "DEFAULT",
    progress: bool = True,
    aa_method: str | None = None,
    aa_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build ``name`` (``<arch>_lpf<N>``) and fill it from its trained baseline ``<arch>`` (the paper's fine-tuning).

    Args:
        name: an anti-aliased model name, e.g. ``'resnet50_lpf4'``, ``'efficientnet_b0_lpf3'``,
            ``'timm/resnet50_lpf4'``.
        baseline_weights: ``"DEFAULT"`` (the baseline's ImageNet weights as
            ``create_model(arch, pretrained=True)`` loads them: torchvision's ``IMAGENET1K_V1``, which
            the paper fine-tuned from, or timm's), the path of a local weights file or checkpoint of the
            baseline, a state dict, or the baseline ``nn.Module`` itself (read, not changed).
        progress: show download progress.
        aa_method: the anti-aliasing method (as :func:`create_model`).
        aa_options: its ``antialias()`` options (as :func:`create_model`); a learned method's new layers
            start as its paper initializes them (:func:`~antialiased.models.transfer.load_baseline`).
        **kwargs: passed to the builders, e.g. ``num_classes`` (default: the baseline's classes).

    Returns:
        The model, with ``model.weights_info.kind == "baseline"`` and the baseline's record in
        ``model.weights_info.baseline``.
    """
    spec = get_model_spec(name, method=aa_method, options=aa_options)
    if isinstance(baseline_weights, (nn.Module, Mapping)):  # in memory: read here, not changed
        _refuse_baseline(spec)
        module = isinstance(baseline_weights, nn.Module)
        state = baseline_weights.state_dict() if module else dict(baseline_weights)
        base = (getattr(baseline_weights, "weights_info", None) if module else None) or \
            memory_info("module" if module else "state_dict")
        model, info = _start_from(get_family(spec.family), spec, state, base, kwargs)
        return attach(model, spec, info)
    path = None if isinstance(baseline_weights, str) and baseline_weights == "DEFAULT" else baseline_weights
    return load_model(spec, WeightsSpec.baseline(path), progress=progress, **kwargs)
