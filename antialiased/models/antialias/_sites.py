"""The site rules: how every kind of site is recognized, as a layer and as a functional call (one table).

Each kind of site is one :class:`~._types.SiteRule`, registered here in
:data:`~._types.SITE_RULES`: its direction (``"down"``: ``conv``, ``max_pool``, ``avg_pool``;
``"up"``: ``transposed_conv``, ``interpolate``, ``pixel_shuffle``), which layers it covers, which
functional calls (``F.max_pool2d`` in Inception v3, ``F.interpolate`` in torchvision's segmentation
heads), how their stride or factor is read, and the layer a call becomes (so that the engine
rewrites every site as a layer).

:func:`classify_module` maps a layer to a :class:`Found` record: a *site* of one of those kinds, or
a *note*, a layer that changes the resolution (or looks as if it did) and is left alone, with the
reason (adaptive pools, dilated convs, layers already anti-aliased, custom layers with a stride).
:func:`classify_call` does the same for a node of a traced forward. An interpolation's factor may
only be known at run time (``size=``): :func:`resolve_upsampling` reads it from the shapes the
engine's probe saw, and an interpolation from a 1x1 map (a broadcast, as DeepLabV3's image-pooling
branch) is a note, not an up site.

Example:
    >>> from torch import nn
    >>> classify_module("features.2", nn.MaxPool2d(3, 2)).kind
    'max_pool'
    >>> up = classify_module("decoder.up", nn.ConvTranspose2d(8, 4, 2, stride=2))
    >>> up.kind, up.direction, up.stride
    ('transposed_conv', 'up', (2, 2))
    >>> classify_module("layer3.0.conv2", nn.Conv2d(8, 8, 3, padding=2, dilation=2)).reason[:36]
    'dilated convolution at stride 1: the'
    >>> classify_module("fc", nn.Linear(8, 2)) is None
    True
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _ntuple

from antialiased.layers import METHOD_LAYERS, BlurPool, BlurPool1D, BlurPool3D
from antialiased.layers.polyphase import phase_role
from antialiased.models.antialias._graphs import FUNCTIONAL_NOTES, FUNCTIONAL_POOLS, is_torch_module
from antialiased.models.antialias._types import SITE_RULES, SiteRule, register_site_rule
from antialiased.models.antialias._upsample import Interpolate

__all__ = [
    "Found", "classify_module", "classify_call", "call_layer", "pool_module", "resolve_upsampling",
    "site_functions", "describe",
]


@dataclass(frozen=True)
class Found:
    """A site (or lookalike) found in the model; ``reason`` is set for those left alone.

    ``stride`` is the stride (down) or the factor (up; None while only the probe can tell).
    """

    path: str
    kind: str
    module: nn.Module | None
    stride: tuple | None
    ndim: int
    origin: str = "module"
    reason: str | None = None
    params: dict | None = None  # a call's constant arguments (its layer's constructor arguments)
    call_inputs: dict | None = None  # a call's arguments computed by the forward (passed to its layer)
    shapes: tuple | None = None  # (input, output) shapes in the engine's probe, where it needed them

    @property
    def is_site(self) -> bool:
        return self.reason is None and self.kind in SITE_RULES

    @property
    def direction(self) -> str:
        rule = SITE_RULES.get(self.kind)
        return rule.direction if rule is not None else "down"


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


_DILATED = ("dilated convolution at stride 1: the taps are spread out and the resolution is kept (an atrous "
            "branch such as DeepLabV3's ASPP, or a stage whose stride was replaced by dilation), so there is no "
            "subsampling to blur")
_ADAPTIVE = ("adaptive pooling to a fixed output size (global pooling when 1x1): its output size is set by "
             "the model, not by a stride; it is not a strided subsampling and is left as it is")
_BLURRED = "already anti-aliased (a blur-subsample layer); left as it is"
_POLYPHASE = "already polyphase (a layer of the phase hand-off protocol: APS, LPS, polyphase upsampling); left as it is"
_BROADCAST = ("interpolates a 1x1 map (a broadcast, as DeepLabV3's image-pooling branch): every output pixel is "
              "the same value, there is nothing to anti-alias; not an up site")
_DOWNSCALE = "downscaling by interpolation is left as it is"
_RUNTIME = "its arguments are computed at run time, so it cannot be rewritten; left as it is"
_UNREACHED = ("its factor is only known at run time (size=) and the shape probe did not reach it; left as it is "
              "(fix: pass the input_size=(C, H, W) at which the model uses it)")


def _custom_reason(module: nn.Module) -> str:
    return (f"custom layer {type(module).__name__} with stride {_strides(module)}: antialias() rewrites "
            f"nn.ConvNd, nn.MaxPoolNd, nn.AvgPoolNd and F.max_pool/F.avg_pool calls; this one is left as it is "
            f"(fix: build it from those layers, or convert it by hand)")


def _already_blurred(module: nn.Module) -> bool:
    return isinstance(module, (BlurPool, BlurPool1D, BlurPool3D)) or "BlurPool" in type(module).__name__


# Lookalikes left alone (strided only): (type test, kind, reason).
_NOTE_TABLE = [
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


def _note_for_layer(path: str, module: nn.Module, stride: tuple[int, ...]) -> Found | None:
    if phase_role(module) is not None:
        return Found(path, "polyphase", module, stride, _ndim(module), reason=_POLYPHASE)
    if max(stride) > 1 and _already_blurred(module):
        return Found(path, "blur", module, stride, _ndim(module), reason=_BLURRED)
    if isinstance(module, nn.modules.conv._ConvNd) and max(stride) == 1 and max(module.dilation) > 1 \
            and not isinstance(module, nn.modules.conv._ConvTransposeNd):
        return Found(path, "dilated_conv", module, stride, len(stride), reason=_DILATED)
    return None


def classify_module(path: str, module: nn.Module) -> Found | None:
    """The record of a layer that changes the resolution (or looks as if it did), or None."""
    for cls, kind, reason in _ALWAYS_LISTED:
        if isinstance(module, cls):
            return Found(path, kind, module, (1,), _ndim(module), reason=reason)
    stride = _strides(module)
    note = _note_for_layer(path, module, stride)
    if note is not None:
        return note
    for rule in SITE_RULES.values():
        if rule.layer(module):
            return rule.read_layer(path, module)
    if max(stride) <= 1:
        return None
    for test, kind, reason in _NOTE_TABLE:
        if test(module):
            return Found(path, kind, module, stride, _ndim(module), reason=reason)
    if not any(True for _ in module.children()) and not is_torch_module(module):
        return Found(path, "custom", module, stride, len(stride), reason=_custom_reason(module))
    return None


# -- down rules ---------------------------------------------------------------------------------

def _strided_layer(kind: str):
    def read(path: str, module: nn.Module) -> Found | None:
        stride = _strides(module)
        return Found(path, kind, module, stride, _ndim(module)) if max(stride) > 1 else None

    return read


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


def _pool_call(kind: str):
    def read(path: str, node: fx.Node, ndim: int) -> Found | None:
        params = _pool_params(node, kind, ndim)
        if params is None:
            return Found(path, kind, None, (2,), ndim, origin=_name(node.target), reason=_RUNTIME)
        if max(params["stride"]) <= 1:
            return None
        return Found(path, kind, None, params["stride"], ndim, origin=_name(node.target), params=params)

    return read


def pool_module(found: Found) -> nn.Module:
    """The layer computing the same as a functional pool call (its arguments in ``found.params``)."""
    params = dict(found.params or {})
    if found.ndim == 1:
        params.pop("divisor_override", None)
    return _POOL_MODULES[found.kind, found.ndim](**params)


def _pool_functions(kind: str) -> dict[object, int]:
    return {target: ndim for target, (k, ndim) in FUNCTIONAL_POOLS.items() if k == kind}


# -- up rules -----------------------------------------------------------------------------------

def _factor(value: object, ndim: int) -> tuple | None:
    """A scale factor per dimension (ints where whole), or None if not a constant number."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * ndim
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    return tuple(int(v) if float(v).is_integer() else float(v) for v in values)


def _scaled(path: str, kind: str, module: nn.Module | None, factor: tuple | None, ndim: int, **fields) -> Found:
    """An interpolation's record: a note when its (known) factor does not enlarge every dimension."""
    if factor is not None and min(factor) <= 1:
        reason = _DOWNSCALE if max(factor) <= 1 else f"scales by {factor}, down in some dimensions: left as it is"
        return Found(path, kind, module, factor, ndim, reason=reason, **fields)
    return Found(path, kind, module, factor, ndim, **fields)


def _transposed_layer(path: str, module: nn.Module) -> Found | None:
    stride = _strides(module)
    return Found(path, "transposed_conv", module, stride, _ndim(module)) if max(stride) > 1 else None


def _transposed_call(path: str, node: fx.Node, ndim: int) -> Found | None:
    stride = node.kwargs.get("stride", node.args[3] if len(node.args) > 3 else 1)
    if _constant(stride) and max(_ntuple(ndim)(stride)) <= 1:
        return None
    reason = ("a strided functional transposed convolution in a custom forward is left as it is (only "
              "nn.ConvTranspose layers are rewritten)")
    return Found(path, "transposed_conv", None, (2,) * ndim, ndim, origin=_name(node.target), reason=reason)


def _interpolation_layer(path: str, module: nn.Module) -> Found:
    ndim = len(module.scale_factor) if isinstance(module.scale_factor, (tuple, list)) else 2
    static = module.size is None and not getattr(module, "runtime_args", ())
    factor = _factor(module.scale_factor, ndim) if static else None  # else: from the probe
    return _scaled(path, "interpolate", module, factor, ndim)


_INTERPOLATE_ARGS = ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias")
_INTERPOLATE_DEFAULTS = {"align_corners": None, "recompute_scale_factor": None, "antialias": False}


def _interpolate_call(path: str, node: fx.Node, ndim: int) -> Found:
    given = dict(zip(_INTERPOLATE_ARGS, node.args[1:]))
    given.update(node.kwargs)
    params = {k: given[k] for k in _INTERPOLATE_ARGS[2:] if k in given and given[k] != _INTERPOLATE_DEFAULTS.get(k, "")}
    if not all(_constant(v) for v in params.values()):
        return Found(path, "interpolate", None, None, ndim, origin="F.interpolate", reason=_RUNTIME)
    runtime = {k: given[k] for k in ("size", "scale_factor") if given.get(k) is not None and not _constant(given[k])}
    params.update({k: given[k] for k in ("size", "scale_factor") if given.get(k) is not None and k not in runtime})
    factor = _factor(params["scale_factor"], ndim) if "scale_factor" in params else None
    return _scaled(path, "interpolate", None, factor, ndim, origin="F.interpolate", params=params,
                   call_inputs=runtime)


def _interpolate_layer(found: Found) -> nn.Module:
    return Interpolate(**(found.params or {}), runtime_args=tuple(found.call_inputs or ()))


def _shuffle_call(path: str, node: fx.Node, ndim: int) -> Found:
    factor = node.kwargs.get("upscale_factor", node.args[1] if len(node.args) > 1 else None)
    if not isinstance(factor, int):
        return Found(path, "pixel_shuffle", None, None, 2, origin=_name(node.target), reason=_RUNTIME)
    return Found(path, "pixel_shuffle", None, (factor, factor), 2, origin=_name(node.target),
                 params={"upscale_factor": factor})


def resolve_upsampling(found: Found, shapes: tuple | None) -> Found:
    """An up record completed from the probe's ``(input, output)`` shapes: its factor, or a note.

    Without shapes, a factor only the probe can tell makes a note (the engine words it).
    """
    if shapes is None:
        return found if found.stride is not None else dataclasses.replace(found, reason=_UNREACHED)
    (before, after), ndim = shapes, len(shapes[0]) - 2
    if all(n == 1 for n in before[2:]):
        return dataclasses.replace(found, reason=_BROADCAST, shapes=shapes)
    factor = found.stride or _factor([a / b for a, b in zip(after[2:], before[2:])], ndim)
    resolved = _scaled(found.path, found.kind, found.module, factor, ndim)
    return dataclasses.replace(found, stride=factor, ndim=ndim, reason=resolved.reason, shapes=shapes)


# -- the table ----------------------------------------------------------------------------------

def _is(*types: type):
    return lambda module: isinstance(module, types)


for _rule in (
    SiteRule("conv", "down", "a strided convolution (nn.Conv1d/2d/3d and subclasses)",
             lambda m: isinstance(m, nn.modules.conv._ConvNd) and not isinstance(m, nn.modules.conv._ConvTransposeNd),
             _strided_layer("conv")),
    SiteRule("max_pool", "down", "a strided max pool (nn.MaxPoolNd, F.max_pool*d)", _is(nn.modules.pooling._MaxPoolNd),
             _strided_layer("max_pool"), _pool_functions("max_pool"), _pool_call("max_pool"), pool_module),
    SiteRule("avg_pool", "down", "a strided average pool (nn.AvgPoolNd, F.avg_pool*d)",
             _is(nn.modules.pooling._AvgPoolNd), _strided_layer("avg_pool"), _pool_functions("avg_pool"),
             _pool_call("avg_pool"), pool_module),
    SiteRule("transposed_conv", "up", "a strided transposed convolution (nn.ConvTranspose1d/2d/3d)",
             _is(nn.modules.conv._ConvTransposeNd), _transposed_layer,
             {F.conv_transpose1d: 1, F.conv_transpose2d: 2, F.conv_transpose3d: 3}, _transposed_call),
    SiteRule("interpolate", "up", "an interpolation up (nn.Upsample, F.interpolate; scale_factor or size)",
             _is(nn.Upsample, Interpolate), _interpolation_layer, {F.interpolate: 2}, _interpolate_call,
             _interpolate_layer),
    SiteRule("pixel_shuffle", "up", "a pixel shuffle (nn.PixelShuffle, F.pixel_shuffle)", _is(nn.PixelShuffle),
             lambda path, m: Found(path, "pixel_shuffle", m, (m.upscale_factor,) * 2, 2),
             {torch.pixel_shuffle: 2, F.pixel_shuffle: 2}, _shuffle_call,
             lambda found: nn.PixelShuffle(found.params["upscale_factor"]),
             out_channels=lambda m, channels: channels // m.upscale_factor ** 2),
):
    register_site_rule(_rule)


def site_functions(direction: str | None = None) -> set:
    """The functional calls the site rules recognize (of one direction, or all)."""
    return {f for rule in SITE_RULES.values() if direction in (None, rule.direction) for f in rule.functions}


def call_layer(found: Found) -> nn.Module:
    """The layer computing the same as a functional call (``SiteRule.call_layer``)."""
    return SITE_RULES[found.kind].call_layer(found)


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
    if kind == "conv" and _constant(stride) and max(_ntuple(2)(stride)) > 1:
        reason = "a strided functional convolution in a custom forward is left as it is (only conv layers are rewritten)"
        return Found(path, kind, None, tuple(_ntuple(2)(stride)), 2, origin=name, reason=reason)
    if kind in ("lp_pool", "space_to_depth"):
        return Found(path, kind, None, (1,), 2, origin=name, reason=f"{name} is left as it is")
    return None


def classify_call(owner: str, node: fx.Node) -> Found | None:
    """The record of a traced call that changes the resolution, or None; its path is ``<owner>.<node name>``."""
    if node.op != "call_function":
        return None
    path = f"{owner}.{node.name}" if owner else node.name
    for rule in SITE_RULES.values():
        if node.target in rule.functions and rule.read_call is not None:
            return rule.read_call(path, node, rule.functions[node.target])
    if node.target in FUNCTIONAL_NOTES:
        return _note_for_call(path, node)
    return None


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
    if phase_role(module) == "up" and getattr(module, "circular", False):
        fields.append("circular")
    if phase_role(module) == "up" and getattr(module, "filt_size", 1) != 1:
        fields.append(f"filt_size={module.filt_size}")
    return fields


def describe(module: nn.Module) -> str:
    """A short one-line description of a layer, e.g. ``Conv2d(64->128, k=3, s=2, p=1)``.

    Example:
        >>> describe(nn.Conv2d(64, 128, 3, 2, 1)), describe(nn.MaxPool2d(3, 2, 1))
        ('Conv2d(64->128, k=3, s=2, p=1)', 'MaxPool2d(k=3, s=2, p=1)')
    """
    name = type(module).__name__
    if (phase_role(module) == "up" and not isinstance(module, nn.modules.conv._ConvNd)) or isinstance(
            module, METHOD_LAYERS):  # issue 19's layers: their options in full (groups, hidden_channels, ...)
        return f"{name}({module.extra_repr()})"
    if isinstance(module, (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)) \
            or hasattr(module, "filt_size"):
        return f"{name}({', '.join(_layer_fields(module))})"
    if isinstance(module, nn.Sequential):
        return " -> ".join(describe(m) for m in module)
    extra = module.extra_repr()
    return f"{name}({extra})" if len(extra) < 60 else name
