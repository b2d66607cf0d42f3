"""Start an anti-aliased model from its trained baseline (the paper's fine-tuning recipe).

The anti-aliased models are the baselines with blur layers inserted, so every learned tensor
(and BN statistic) of the baseline has exactly one counterpart playing the same role: the
non-blur state-dict entries of both models, in order. :func:`copy_params_buffers` pairs them
that way and checks each pair (leaf name and shape) instead of guessing by shape.
"""
from __future__ import annotations

import copy
import os
from typing import Mapping

import torch
from torch import nn

from antialiased.errors import ModelError, WeightsError
from antialiased.layers import BlurPool, BlurPool1D, BlurPool3D
from antialiased.models._heads import num_outputs
from antialiased.models.factory import create_model
from antialiased.models.registry import ModelSpec, baseline_spec, get_model_spec, get_source
from antialiased.models.weights_info import WeightsInfo, attach, baseline_info, memory_info
from antialiased.support.checkpoints import load_into

__all__ = ["copy_params_buffers", "init_from_baseline", "blur_keys"]

_BLUR_TYPES = (BlurPool, BlurPool1D, BlurPool3D)


def blur_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the fixed blur filters (buffers of BlurPool layers), which are not learned."""
    return {
        f"{name}.{buffer}" if name else buffer
        for name, module in model.named_modules()
        if isinstance(module, _BLUR_TYPES)
        for buffer, _ in module.named_buffers(recurse=False)
    }


def _learned(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    skip = blur_keys(model)
    return [(k, v) for k, v in model.state_dict().items() if k not in skip]


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def copy_params_buffers(baseline: nn.Module, model: nn.Module) -> dict[str, str]:
    """Copy every parameter and buffer of ``baseline`` into the entry of ``model`` with the same role.

    Blur filters of either model are left out (they are fixed, not learned). Entries are paired
    in state-dict order; each pair must agree in leaf name (weight, running_var, ...) and shape,
    else nothing is copied and a :class:`~antialiased.errors.WeightsError` names the first disagreement.

    Returns:
        ``{model_key: baseline_key}`` for every copied entry.

    Example:
        >>> import torchvision
        >>> base = torchvision.models.mobilenet_v2(num_classes=10)
        >>> pairs = copy_params_buffers(base, create_model("mobilenet_v2_lpf3", num_classes=10))
        >>> pairs["classifier.0.weight"], pairs["features.2.conv.3.weight"]  # moved past dropout / blur
        ('classifier.1.weight', 'features.2.conv.2.weight')
    """
    source, dest = _learned(baseline), _learned(model)
    if len(source) != len(dest):
        src_keys, dst_keys = [k for k, _ in source], [k for k, _ in dest]
        raise WeightsError(
            f"the baseline has {len(source)} learned parameters/buffers but the anti-aliased model has "
            f"{len(dest)}: they are not the same architecture (baseline starts {src_keys[:3]}, model "
            f"starts {dst_keys[:3]}). Build the model from the baseline's architecture and num_classes."
        )
    for (src_key, src), (dst_key, dst) in zip(source, dest):
        if _leaf(src_key) != _leaf(dst_key) or src.shape != dst.shape:
            raise WeightsError(
                f"baseline entry {src_key!r} {tuple(src.shape)} does not match anti-aliased entry "
                f"{dst_key!r} {tuple(dst.shape)}: the two models differ in architecture or num_classes"
            )
    state = model.state_dict()
    for (src_key, src), (dst_key, _) in zip(source, dest):
        state[dst_key] = src.detach().to(dtype=state[dst_key].dtype)
    model.load_state_dict(state, strict=True)
    return {dst_key: src_key for (src_key, _), (dst_key, _) in zip(source, dest)}


def _baseline(spec: ModelSpec, weights: object, progress: bool, kwargs: dict) -> tuple[nn.Module, WeightsInfo]:
    """The trained baseline of ``spec`` and the record of its weights."""
    if isinstance(weights, nn.Module):
        return weights, getattr(weights, "weights_info", None) or memory_info("module")
    name = baseline_spec(spec).name
    if isinstance(weights, str) and weights == "DEFAULT":
        model = create_model(name, pretrained=True, progress=progress, **kwargs)
    elif isinstance(weights, Mapping):
        model = create_model(name, **kwargs)
        load_into(model, dict(weights), source="the given baseline state dict")
        attach(model, model.model_spec, memory_info("state_dict"))
    else:
        model = create_model(name, weights=weights, **kwargs)
    return model, model.weights_info


def init_from_baseline(
    name: str | ModelSpec,
    *,
    baseline_weights: str | os.PathLike | nn.Module | Mapping[str, torch.Tensor] = "DEFAULT",
    progress: bool = True,
    aa_method: str | None = None,
    **kwargs,
) -> nn.Module:
    """Build ``name`` (``<arch>_lpf<N>``) and fill it from its trained baseline ``<arch>``.

    The paper's names (its module layout) get the baseline's tensors by role
    (:func:`copy_params_buffers`); every other name is its baseline converted by
    :func:`~antialiased.models.antialias.antialias` (same keys, so the weights come along as they are).

    Args:
        name: an anti-aliased model name, e.g. ``'resnet50_lpf4'``, ``'efficientnet_b0_lpf3'``,
            ``'timm/resnet50_lpf4'``.
        baseline_weights: ``"DEFAULT"`` (the baseline's ImageNet weights as
            ``create_model(arch, pretrained=True)`` loads them: torchvision's ``IMAGENET1K_V1``, which
            the paper fine-tuned from, or timm's), the path of a local weights file or checkpoint of the
            baseline, a state dict, or the baseline ``nn.Module`` itself (copied, not changed).
        progress: show download progress.
        aa_method: the anti-aliasing method (as :func:`~antialiased.models.create_model`).
        **kwargs: passed to both builders, e.g. ``num_classes`` (default: the baseline's classes).

    Returns:
        The model, with ``model.weights_info.kind == "baseline"`` and the baseline's record in
        ``model.weights_info.baseline``.
    """
    spec = get_model_spec(name, method=aa_method)
    if not spec.antialiased:
        raise ModelError(
            f"init_from_baseline builds an anti-aliased model from its baseline; {spec.name!r} is the baseline "
            f"itself. Use an anti-aliased name such as '{spec.name}_lpf4'."
        )
    baseline, base_info = _baseline(spec, baseline_weights, progress, kwargs)
    convert = get_source(spec.source).convert
    if convert is not None:  # the caller's module is converted as a copy; ours in place
        baseline = copy.deepcopy(baseline) if baseline is baseline_weights else baseline
        return attach(convert(baseline, spec), spec, baseline_info(base_info))
    if "num_classes" not in kwargs and num_outputs(baseline) is not None:
        kwargs = {**kwargs, "num_classes": num_outputs(baseline)}
    model = create_model(spec, **kwargs)
    copy_params_buffers(baseline, model)
    return attach(model, spec, baseline_info(base_info))
