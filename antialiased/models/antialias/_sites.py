"""Where a model subsamples: layers and functional calls, each classified by a table.

:func:`classify_module` maps a layer to a :class:`Found` record: a *site* the methods rewrite
(``conv``, ``max_pool``, ``avg_pool`` with a stride above 1) or a *note*, a layer that subsamples
(or looks as if it did) and is left alone, with the reason (strided transposed convs, adaptive
pools, dilated convs, layers already anti-aliased, custom layers with a stride).
:func:`classify_call` does the same for a node of a traced forward (``F.max_pool2d`` in
Inception v3); :func:`pool_module` turns a functional pool into the equivalent layer, so that the
engine rewrites every site as a module.

Example:
    >>> from torch import nn
    >>> classify_module("features.2", nn.MaxPool2d(3, 2)).kind
    'max_pool'
    >>> classify_module("layer3.0.conv2", nn.Conv2d(8, 8, 3, padding=2, dilation=2)).reason[:36]
    'dilated convolution at stride 1: the'
    >>> classify_module("fc", nn.Linear(8, 2)) is None
    True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.fx as fx
from torch import nn
from torch.nn.modules.utils import _ntuple

from antialiased.layers import BlurPool, BlurPool1D, BlurPool3D
from antialiased.models.antialias._graphs import FUNCTIONAL_NOTES, FUNCTIONAL_POOLS, is_torch_module
from antialiased.models.antialias._types import SITE_KINDS

__all__ = ["Found", "classify_module", "classify_call", "pool_module", "describe"]


@dataclass(frozen=True)
class Found:
    """A subsampling (or lookalike) found in the model; ``reason`` is set for those left alone."""

    path: str
    kind: str
    module: nn.Module | None
    stride: tuple[int, ...]
    ndim: int
    origin: str = "module"
    reason: str | None = None
    params: dict | None = None  # a functional pool's arguments

    @property
    def is_site(self) -> bool:
        return self.reason is None and self.kind in SITE_KINDS


def _ndim(module: nn.Module) -> int:
    if isinstance(module, nn.modules.conv._ConvNd):
        return len(module.kernel_size)
    for cls in type(module).__mro__:  # MaxPool2d, timm's MaxPool2dSame(nn.MaxPool2d), ...
        if cls.__module__.startswith("torch.nn") and cls.__name__[-2:] in ("1d", "2d", "3d"):
            return int(cls.__name__[-2])
    return 2


def _strides(module: nn.Module) -> tuple[int, ...]:
    stride = getattr(module, "stride", 1)
    if isinstance(stride, (tuple, list)) and all(isinstance(s, int) for s in stride):
        return tuple(stride)
    return (stride,) * _ndim(module) if isinstance(stride, int) and not isinstance(stride, bool) else (1,)


_TRANSPOSED = ("a strided transposed convolution upsamples; BlurPool anti-aliases subsampling, so it is "
               "left as it is")
_DILATED = ("dilated convolution at stride 1: the stage keeps its resolution (its stride was replaced by "
            "dilation, e.g. replace_stride_with_dilation), so there is no subsampling to blur")
_ADAPTIVE = ("adaptive pooling to a fixed output size (global pooling when 1x1): its output size is set by "
             "the model, not by a stride; it is not a strided subsampling and is left as it is")
_BLURRED = "already anti-aliased (a blur-subsample layer); left as it is"


def _custom_reason(module: nn.Module) -> str:
    return (f"custom layer {type(module).__name__} with stride {_strides(module)}: antialias() rewrites "
            f"nn.ConvNd, nn.MaxPoolNd, nn.AvgPoolNd and F.max_pool/F.avg_pool calls; this one is left as it is "
            f"(fix: build it from those layers, or convert it by hand)")


def _already_blurred(module: nn.Module) -> bool:
    return isinstance(module, (BlurPool, BlurPool1D, BlurPool3D)) or "BlurPool" in type(module).__name__


# (type test, kind, reason or None for a site). The first matching row decides; strided only unless noted.
_MODULE_TABLE: list[tuple[Callable[[nn.Module], bool], str, str | None]] = [
    (_already_blurred, "blur", _BLURRED),
    (lambda m: isinstance(m, nn.modules.conv._ConvTransposeNd), "transposed_conv", _TRANSPOSED),
    (lambda m: isinstance(m, nn.modules.conv._ConvNd), "conv", None),
    (lambda m: isinstance(m, nn.modules.pooling._MaxPoolNd), "max_pool", None),
    (lambda m: isinstance(m, nn.modules.pooling._AvgPoolNd), "avg_pool", None),
    (lambda m: isinstance(m, nn.modules.pooling._LPPoolNd), "lp_pool",
     "power-average (LP) pooling is left as it is (only max and average pools are rewritten)"),
    (lambda m: isinstance(m, (nn.FractionalMaxPool2d, nn.FractionalMaxPool3d)), "fractional_pool",
     "fractional max-pooling samples random windows; left as it is"),
]
_ALWAYS_LISTED: list[tuple[type, str, str]] = [
    (nn.modules.pooling._AdaptiveAvgPoolNd, "adaptive_pool", _ADAPTIVE),
    (nn.modules.pooling._AdaptiveMaxPoolNd, "adaptive_pool", _ADAPTIVE),
    (nn.PixelUnshuffle, "space_to_depth", "pixel unshuffle moves pixels into channels without discarding "
     "any (no aliasing); left as it is"),
]


def classify_module(path: str, module: nn.Module) -> Found | None:
    """The record of a layer that subsamples (or looks as if it did), or None."""
    for cls, kind, reason in _ALWAYS_LISTED:
        if isinstance(module, cls):
            return Found(path, kind, module, (1,), _ndim(module), reason=reason)
    stride = _strides(module)
    if isinstance(module, nn.modules.conv._ConvNd) and max(stride) == 1 and max(module.dilation) > 1:
        return Found(path, "dilated_conv", module, stride, len(stride), reason=_DILATED)
    if max(stride) <= 1:
        return None
    for test, kind, reason in _MODULE_TABLE:
        if test(module):
            return Found(path, kind, module, stride, _ndim(module), reason=reason)
    if not any(True for _ in module.children()) and not is_torch_module(module):
        return Found(path, "custom", module, stride, len(stride), reason=_custom_reason(module))
    return None


_POOL_ARGS = {
    "max_pool": ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "avg_pool": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
}
_POOL_MODULES = {
    ("max_pool", 1): nn.MaxPool1d, ("max_pool", 2): nn.MaxPool2d, ("max_pool", 3): nn.MaxPool3d,
    ("avg_pool", 1): nn.AvgPool1d, ("avg_pool", 2): nn.AvgPool2d, ("avg_pool", 3): nn.AvgPool3d,
}


def _constant(value: object) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_constant(v) for v in value)
    return not isinstance(value, fx.Node)


def _pool_params(node: fx.Node, kind: str, ndim: int) -> dict | None:
    params = dict(zip(_POOL_ARGS[kind], node.args[1:]))
    params.update(node.kwargs)
    if not all(_constant(v) for v in params.values()):
        return None
    if params.get("stride") in (None, [], ()):
        params["stride"] = params["kernel_size"]
    params["stride"] = tuple(_ntuple(ndim)(params["stride"]))
    return params


def _name(target: object) -> str:
    return f"F.{getattr(target, '__name__', str(target))}"


def _strided_slice(node: fx.Node) -> bool:
    index = node.args[1] if len(node.args) > 1 else None
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, slice) and isinstance(i.step, int) and i.step > 1 for i in items[2:])


def _note_for_call(path: str, node: fx.Node) -> Found | None:
    kind, name = FUNCTIONAL_NOTES[node.target]
    if kind == "adaptive_pool":
        return Found(path, kind, None, (1,), 2, origin=name, reason=_ADAPTIVE)
    if kind == "slice":
        reason = "strided slicing (subsampling by indexing, e.g. space-to-depth); left as it is"
        return Found(path, kind, None, (2,), 2, origin=name, reason=reason) if _strided_slice(node) else None
    stride = node.kwargs.get("stride", node.args[3] if len(node.args) > 3 else 1)
    scale = node.kwargs.get("scale_factor", node.args[2] if len(node.args) > 2 else None)
    if kind == "conv" and _constant(stride) and max(_ntuple(2)(stride)) > 1:
        reason = "a strided functional convolution in a custom forward is left as it is (only conv layers are rewritten)"
        return Found(path, kind, None, tuple(_ntuple(2)(stride)), 2, origin=name, reason=reason)
    if kind == "interpolate" and isinstance(scale, (int, float)) and scale < 1:
        return Found(path, kind, None, (1,), 2, origin=name, reason="downscaling by interpolation is left as it is")
    if kind in ("lp_pool", "space_to_depth"):
        return Found(path, kind, None, (1,), 2, origin=name, reason=f"{name} is left as it is")
    return None


def classify_call(owner: str, node: fx.Node) -> Found | None:
    """The record of a traced call that subsamples, or None; its path is ``<owner>.<node name>``."""
    if node.op != "call_function":
        return None
    path = f"{owner}.{node.name}" if owner else node.name
    if node.target in FUNCTIONAL_POOLS:
        kind, ndim = FUNCTIONAL_POOLS[node.target]
        params = _pool_params(node, kind, ndim)
        if params is None:
            reason = "its arguments are computed at run time, so it cannot be rewritten; left as it is"
            return Found(path, kind, None, (2,), ndim, origin=_name(node.target), reason=reason)
        if max(params["stride"]) <= 1:
            return None
        return Found(path, kind, None, params["stride"], ndim, origin=_name(node.target), params=params)
    if node.target in FUNCTIONAL_NOTES:
        return _note_for_call(path, node)
    return None


def pool_module(found: Found) -> nn.Module:
    """The layer computing the same as a functional pool call (its arguments in ``found.params``)."""
    params = dict(found.params or {})
    if found.ndim == 1:
        params.pop("divisor_override", None)
    return _POOL_MODULES[found.kind, found.ndim](**params)


def _short(value: object) -> str:
    if isinstance(value, (tuple, list)) and len(set(value)) == 1:
        value = value[0]
    return str(tuple(value)) if isinstance(value, (tuple, list)) else str(value)


def _layer_fields(module: nn.Module) -> list[str]:
    fields = []
    if isinstance(module, nn.modules.conv._ConvNd):
        fields.append(f"{module.in_channels}->{module.out_channels}")
    elif hasattr(module, "filt_size") and hasattr(module, "channels"):  # a blur layer
        return [str(module.channels), f"filt_size={module.filt_size}", f"stride={_short(module.stride)}"] + (
            [f"pad_type={module.pad_type!r}"] if getattr(module, "pad_type", "reflect") != "reflect" else [])
    for key, label, default in (("kernel_size", "k", None), ("stride", "s", None), ("padding", "p", 0),
                                ("dilation", "d", 1), ("groups", "groups", 1)):
        value = getattr(module, key, default)
        if value is not None and _short(value) != str(default):
            fields.append(f"{label}={_short(value)}")
    if getattr(module, "ceil_mode", False):
        fields.append("ceil_mode")
    return fields


def describe(module: nn.Module) -> str:
    """A short one-line description of a layer, e.g. ``Conv2d(64->128, k=3, s=2, p=1)``.

    Example:
        >>> describe(nn.Conv2d(64, 128, 3, 2, 1)), describe(nn.MaxPool2d(3, 2, 1))
        ('Conv2d(64->128, k=3, s=2, p=1)', 'MaxPool2d(k=3, s=2, p=1)')
    """
    name = type(module).__name__
    if isinstance(module, (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)) \
            or hasattr(module, "filt_size"):
        return f"{name}({', '.join(_layer_fields(module))})"
    if isinstance(module, nn.Sequential):
        return " -> ".join(describe(m) for m in module)
    extra = module.extra_repr()
    return f"{name}({extra})" if len(extra) < 60 else name
