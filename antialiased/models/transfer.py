"""A baseline's weights in its anti-aliased conversion (the paper's fine-tuning start, ``pretrained=True``).

``antialias()`` keeps the baseline's state-dict keys and adds layers of its own. A baseline
checkpoint (torchvision's, timm's, yours: unconverted keys) therefore fills every entry of the
converted model except those of the layers ``antialias()`` inserted, which it tags
(:data:`~antialiased.models.antialias.INSERTED`). :func:`load_baseline` loads it strictly about
everything else and lets the inserted layers start their own way.

**Protocol for learned layers** (a method whose inserted layers hold parameters): after the
baseline's tensors are in the model, each inserted layer that has state is initialized by its
``init_from_baseline()`` method if it defines one (e.g. to start as the identity of the network
it joins), else by its own ``reset_parameters()`` if it has one; layers with neither keep the
values they were built with.

:func:`copy_params_buffers` pairs two models' entries by role (same order, leaf name and shape)
when their keys differ.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from antialiased.errors import WeightsError
from antialiased.layers import BlurPool, BlurPool1D, BlurPool3D
from antialiased.models.antialias import INSERTED
from antialiased.models.keymap import pair_by_role
from antialiased.support.checkpoints import load_into

__all__ = ["blur_keys", "copy_params_buffers", "inserted_keys", "load_baseline"]

_BLUR_TYPES = (BlurPool, BlurPool1D, BlurPool3D)


def blur_keys(model: nn.Module) -> set[str]:
    """Names of the fixed blur filters (buffers of BlurPool layers), which are not learned."""
    return {
        f"{name}.{buffer}" if name else buffer
        for name, module in model.named_modules()
        if isinstance(module, _BLUR_TYPES)
        for buffer, _ in module.named_buffers(recurse=False)
    }


def _inserted(model: nn.Module) -> dict[str, nn.Module]:
    """Path -> layer, for every layer ``antialias()`` inserted (tagged with ``INSERTED``)."""
    return {path: module for path, module in model.named_modules() if getattr(module, INSERTED, False)}


def inserted_keys(model: nn.Module) -> set[str]:
    """State-dict keys that belong to layers ``antialias()`` inserted (empty for the blur and APS methods,
    whose layers save nothing; the learned methods' parameters and buffers: LPS, adaptive, TIPS)."""
    prefixes = tuple(f"{path}." for path in _inserted(model))
    return {key for key in model.state_dict() if key.startswith(prefixes)} if prefixes else set()


def _initialize(model: nn.Module) -> None:
    """Start each inserted layer that holds state its own way (the module doc's protocol)."""
    for module in _inserted(model).values():
        if not module.state_dict():
            continue
        start = getattr(module, "init_from_baseline", None) or getattr(module, "reset_parameters", None)
        if callable(start):
            start()


def load_baseline(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *,
                  source: str = "the baseline's state dict") -> nn.Module:
    """Load a baseline checkpoint (unconverted keys) into ``model``, its ``antialias()`` conversion.

    Strict about every key except those of the layers ``antialias()`` inserted, which must be
    exactly the missing ones; those layers then start their own way (the module doc's protocol).
    Keys of another layout that the model's family maps on load (e.g. torchvision's MobileNet-v2
    classifier for the paper's single-Linear one) are mapped first.

    Args:
        model: the anti-aliased model (``create_model('<arch>_lpf<N>')``, ``antialias(baseline)``).
        state_dict: the baseline's, e.g. ``torchvision.models.resnet50(weights="DEFAULT").state_dict()``.
        source: where it came from, for messages.

    Returns:
        ``model``.

    Raises:
        WeightsError: a key that does not fit (naming it), a shape mismatch (with the ``num_classes``
            that fits), or a state dict that already holds the inserted layers' entries (an
            anti-aliased checkpoint: load it with ``load_state_dict`` or ``create_model(weights=...)``).

    Example:
        >>> import torch, torchvision
        >>> from antialiased.models.antialias import antialias
        >>> baseline = torchvision.models.resnet18(num_classes=10)
        >>> model = load_baseline(antialias(torchvision.models.resnet18(num_classes=10)), baseline.state_dict())
        >>> torch.equal(model.fc.weight, baseline.fc.weight)
        True
    """
    inserted = inserted_keys(model)
    present = sorted(key for key in inserted if key in state_dict)
    if present:
        raise WeightsError(f"{source} already holds entries of the layers antialias() inserted ({', '.join(present[:3])}"
                           f"{', ...' if len(present) > 3 else ''}): it is an anti-aliased model's checkpoint, not a "
                           f"baseline's; load it with model.load_state_dict() or create_model(name, weights=PATH)")
    load_into(model, state_dict, source=source, expected_missing=inserted)
    _initialize(model)
    return model


def _learned(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    skip = blur_keys(model)
    return [(k, v) for k, v in model.state_dict().items() if k not in skip]


def copy_params_buffers(baseline: nn.Module, model: nn.Module) -> dict[str, str]:
    """Copy every parameter and buffer of ``baseline`` into the entry of ``model`` with the same role.

    Blur filters of either model are left out (they are fixed, not learned). Entries are paired
    in state-dict order; each pair must agree in leaf name (weight, running_var, ...) and shape,
    else nothing is copied and a :class:`~antialiased.errors.WeightsError` names the first disagreement.

    Returns:
        ``{model_key: baseline_key}`` for every copied entry.

    Example:
        >>> import torchvision
        >>> from antialiased.models import create_model
        >>> base = torchvision.models.mobilenet_v2(num_classes=10)
        >>> pairs = copy_params_buffers(base, create_model("mobilenet_v2_lpf3", num_classes=10))
        >>> pairs["classifier.0.weight"], pairs["features.2.conv.2.weight"]  # moved past the dropout layer
        ('classifier.1.weight', 'features.2.conv.2.weight')
    """
    pairs = pair_by_role(_learned(baseline), _learned(model), source_name="the baseline",
                         dest_name="the anti-aliased model")
    source = baseline.state_dict()
    state = model.state_dict()
    for src_key, dst_key in pairs:
        state[dst_key] = source[src_key].detach().to(dtype=state[dst_key].dtype)
    model.load_state_dict(state, strict=True)
    return {dst_key: src_key for src_key, dst_key in pairs}
