"""What the graph says about shapes: a value's channel count, and whether a layer reads the image.

Both walk the shallow graphs backwards (``_graphs.GraphIndex``): through layers and functions
that keep the channel count (activations, norms, pools, element-wise arithmetic), into the last
layer of a block, out of a block's input to where its caller got it, and across ``torch.cat``
along channels (summing). They answer None when the graph cannot tell (an untraced forward, an
unknown function); the engine then runs its shape probe (``_probe``) instead.

Example:
    >>> from torch import nn
    >>> from antialiased.models.antialias._graphs import GraphIndex
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, 2), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
    >>> index = GraphIndex(net)
    >>> input_channels(index, "3"), reads_image(index, "0"), reads_image(index, "3")
    (8, True, False)
"""
from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from antialiased.models.antialias._follow import role
from antialiased.models.antialias._graphs import FUNCTIONAL_POOLS, GraphIndex

__all__ = ["input_channels", "reads_image"]

_MAX_STEPS = 200
_KEEPS_CHANNELS = (
    nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._LPPoolNd, nn.modules.padding._ConstantPadNd,
    nn.modules.padding._ReflectionPadNd, nn.modules.padding._ReplicationPadNd, nn.Upsample, nn.ChannelShuffle,
)
_KEEPS_CHANNELS_FUNCTIONS = {
    operator.add, operator.mul, operator.sub, operator.truediv, operator.iadd, operator.imul, torch.add, torch.mul,
    F.dropout, F.interpolate, F.pad, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, *FUNCTIONAL_POOLS,
}
_KEEPS_CHANNELS_METHODS = {"contiguous", "clone", "mul", "add", "mul_", "add_", "float", "to", "type_as"}
_CAT = {torch.cat, torch.concat}


def _declared(module: nn.Module) -> int | None:
    """Output channels a layer states (conv, norm, blur), if it does."""
    for name in ("out_channels", "num_features", "num_channels", "channels"):
        value = getattr(module, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    shape = getattr(module, "normalized_shape", None)  # LayerNorm2d (channels first) of torchvision/timm
    if shape is not None and len(shape) == 1 and "2d" in type(module).__name__:
        return shape[0]
    return None


def _source(node: fx.Node) -> fx.Node | None:
    """The first node among the arguments (inside a list too: ``torch.cat([a, b], 1)``)."""
    for arg in node.args:
        for item in arg if isinstance(arg, (list, tuple)) else (arg,):
            if isinstance(item, fx.Node):
                return item
    return None


def _cat_channels(index: GraphIndex, owner: str, node: fx.Node, steps: int) -> int | None:
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
    parts = node.args[0] if node.args else None
    if dim != 1 or not isinstance(parts, (list, tuple)):
        return None
    counts = [_channels(index, owner, part, steps + 1) if isinstance(part, fx.Node) else None for part in parts]
    return sum(counts) if all(c is not None for c in counts) else None


def _module_channels(index: GraphIndex, path: str, node: fx.Node, owner: str, steps: int) -> int | None:
    module = index.module(path)
    declared = _declared(module)
    if declared is not None:
        return declared
    if role(node, index.module(owner)) is not None or isinstance(module, _KEEPS_CHANNELS):
        return _channels(index, owner, _source(node), steps + 1)
    graph = index.graph(path) if any(True for _ in module.children()) else None
    output = next((n for n in graph.nodes if n.op == "output"), None) if graph is not None else None
    value = output.args[0] if output is not None else None
    return _channels(index, path, value, steps + 1) if isinstance(value, fx.Node) else None


def _channels(index: GraphIndex, owner: str, node: fx.Node | None, steps: int = 0) -> int | None:
    if node is None or steps > _MAX_STEPS:
        return None
    if node.op == "placeholder":
        up = index.owner(owner) if owner and node is _first_placeholder(node) else None
        return _channels(index, up[0], _source(up[1]), steps + 1) if up is not None else None
    if node.op == "call_module":
        return _module_channels(index, f"{owner}.{node.target}" if owner else node.target, node, owner, steps)
    if node.op == "call_function" and node.target in _CAT:
        return _cat_channels(index, owner, node, steps)
    keeps = (node.op == "call_function" and node.target in _KEEPS_CHANNELS_FUNCTIONS) or (
        node.op == "call_method" and node.target in _KEEPS_CHANNELS_METHODS) or role(node, index.module(owner))
    return _channels(index, owner, _source(node), steps + 1) if keeps else None


def _first_placeholder(node: fx.Node) -> fx.Node:
    return next(n for n in node.graph.nodes if n.op == "placeholder")


def input_channels(index: GraphIndex, path: str) -> int | None:
    """Channels of the input of the layer at ``path``, from the graphs (None if they cannot tell)."""
    located = index.owner(path)
    return _channels(index, located[0], _source(located[1])) if located is not None else None


def reads_image(index: GraphIndex, path: str) -> bool | None:
    """Whether the layer at ``path`` gets the model's input with no layer before it (None: unknown).

    Functions on the way (Inception's input transform) do not count as layers.
    """
    located = index.owner(path)
    for _ in range(_MAX_STEPS):
        if located is None:
            return None
        owner, node = located
        value = _source(node)
        while value is not None and value.op in ("call_function", "call_method"):
            value = _source(value)
        if value is None or value.op != "placeholder":
            return False
        if value is not _first_placeholder(value):
            return False
        if not owner:
            return True
        located = index.owner(owner)
    return None
