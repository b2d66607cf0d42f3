"""The feature maps of a model and their cumulative strides, found by probing it with hooks.

A probe forward pass at the crop size (and one 64 pixels larger, to read each map's stride as
input pixels per feature-map pixel) records every module's output. Modules called once whose
output is a spatial (N, C, H, W) map that grows with the input are feature maps. At each cumulative
stride, the outermost module (fewest dots in its name) that the forward pass finishes last ends a
subsampling stage: for a ResNet ``relu``, ``layer1``, ..., ``layer4``; for a RegNet ``stem``,
``trunk_output.block1``, ...; outermost, because a shortcut branch may subsample before the main
branch of its block runs at the previous stride. A decoder (the maps after the last one at the
largest stride: a U-Net's up path, a segmentation model's upsampled output, which is the model's
own output, named ``(output)``) has its stages on the way up, one per stride, in the same way.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from antialiased.errors import ConfigError, ModelError
from antialiased.evaluation.probe import unwrap_model

__all__ = ["FeatureMap", "find_feature_maps", "select_layers", "spatial_output", "OUTPUT_NAME"]

OUTPUT_NAME = "(output)"  # the model's own output map (a segmentation model's), in records and --layers

_PROBE_GROWTH = 64  # input pixels added for the second probe: exact strides up to 64


@dataclass(frozen=True)
class FeatureMap:
    """A module's output map: its name, depth (order among feature maps), stride (h, w), shape (C, H, W)."""

    name: str
    depth: int
    stride: tuple[int, int]
    shape: tuple[int, int, int]
    stage: bool = False

    def record(self) -> dict[str, Any]:
        return {"name": self.name or OUTPUT_NAME, "depth": self.depth, "stride": list(self.stride),
                "shape": list(self.shape),
                "stage": self.stage}


def spatial_output(output: Any) -> torch.Tensor | None:
    """The (N, C, H, W) map of a module's output (the first item of a tuple, a dict's ``"out"``), or None."""
    if isinstance(output, dict):
        output = output.get("out")
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    return output if torch.is_tensor(output) and output.dim() == 4 and output.is_floating_point() else None


def _probe(model: nn.Module, size: int, device: torch.device | str) -> tuple[list[str], dict[str, int], dict]:
    """Module names in the order their forward passes finish, their call counts and first outputs' shapes."""
    order: list[str] = []
    calls: dict[str, int] = {}
    shapes: dict[str, Any] = {}

    def hook(name: str):
        def record(module: nn.Module, args: Any, output: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            if calls[name] == 1:
                order.append(name)
                out = spatial_output(output)
                shapes[name] = tuple(out.shape[1:]) if out is not None else _kind(output)
        return record

    # the model itself too (named ""): a segmentation model's output is its last map at stride 1
    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, size, size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return order, calls, shapes


def _kind(output: Any) -> str:
    return f"shape {tuple(output.shape)}" if torch.is_tensor(output) else type(output).__name__


def _stride(size: int, small: tuple, large: tuple | None) -> tuple[int, int] | None:
    """Input pixels per map pixel, from the growth between the probes (or the ratio when only one ran)."""
    if large is None:
        return (max(1, round(size / small[1])), max(1, round(size / small[2])))
    grow = (large[1] - small[1], large[2] - small[2])
    if min(grow) <= 0:
        return None  # the map does not grow with the input (adaptive pooling): no fixed stride
    return tuple(_PROBE_GROWTH // g if _PROBE_GROWTH % g == 0 else max(1, round(size / s))
                 for g, s in zip(grow, small[1:]))


def _map_stride(size: int, shape: Any, calls: int, large: dict | None, name: str) -> tuple[int, int] | None:
    """The stride of a module's output if it is a spatial map of a module called once, else None."""
    if calls != 1 or isinstance(shape, str) or min(shape[1:]) < 2:
        return None
    if large is None:
        return _stride(size, shape, None)
    bigger = large.get(name)
    return None if bigger is None or isinstance(bigger, str) else _stride(size, shape, bigger)


def _depth(name: str) -> int:
    return -1 if not name else name.count(".")  # the model's own output is the outermost of all


def find_feature_maps(model: nn.Module, size: int = 224, device: torch.device | str = "cpu") -> list[FeatureMap]:
    """Every module output that is a spatial feature map at a fixed stride, in execution order, stages marked.

    Raises:
        ModelError: the model has no spatial feature map (e.g. no (N, C, H, W) output larger than 1x1).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> [(m.name, m.stride, m.stage) for m in find_feature_maps(net, 32)]
        [('0', (1, 1), False), ('1', (1, 1), True), ('2', (2, 2), True)]
    """
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    try:
        order, calls, shapes = _probe(model, size, device)
        try:
            large = _probe(model, size + _PROBE_GROWTH, device)[2]
        except (RuntimeError, ValueError, AssertionError):  # one input size only: strides from the size ratio
            large = None
    finally:
        model.train(was_training)
    maps: list[FeatureMap] = []
    for name in order:
        stride = _map_stride(size, shapes[name], calls[name], large, name)
        if stride is not None:
            maps.append(FeatureMap(name, len(maps), stride, shapes[name]))
    if not maps:
        raise ModelError("-eq measures the equivariance of feature maps, but this model has no module whose output "
                         "is a spatial (N, C, H, W) map that grows with the input (larger than 1x1)")
    # The outermost module finished last at each stride, on the way down and (a decoder's maps, after
    # the last map at the largest stride) on the way up.
    deepest = max(m.stride for m in maps)
    bottom = max(i for i, m in enumerate(maps) if m.stride == deepest)
    ends: dict[tuple[tuple[int, int], bool], FeatureMap] = {}
    for i, m in enumerate(maps):
        key = (m.stride, i > bottom)
        if key not in ends or _depth(m.name) <= _depth(ends[key].name):
            ends[key] = m
    stages = {m.name for m in ends.values()}
    return [FeatureMap(m.name, m.depth, m.stride, m.shape, stage=m.name in stages) for m in maps]


def select_layers(maps: Sequence[FeatureMap], names: Sequence[str] = (), model: nn.Module | None = None
                  ) -> list[FeatureMap]:
    """The stage maps plus the maps named in ``names`` (``--layers``), in execution order.

    Raises:
        ConfigError: a name that is no module of the model, or a module without a spatial feature
            map at a fixed stride (the message lists the valid names).
    """
    by_name = {m.name: m for m in maps}
    wrong = [n for n in names if n not in by_name]
    if wrong:
        modules = {n for n, _ in unwrap_model(model).named_modules()} if model is not None else set()
        details = []
        for name in wrong:
            why = "is a module without a spatial feature map at a fixed stride (or called more than once)" \
                if name in modules else "is not a module of the model"
            close = difflib.get_close_matches(name, list(by_name), n=3)
            details.append(f"{name!r} {why}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise ConfigError(f"--layers: {'; '.join(details)}. Valid names: {', '.join(by_name)}")
    chosen = set(names) | {m.name for m in maps if m.stage}
    return [m for m in maps if m.name in chosen]
