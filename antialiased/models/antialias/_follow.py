"""What follows a convolution: its normalization and activation, found in the graph.

The paper blurs a strided conv's output *after* its norm and activation (conv -> BN -> ReLU ->
blur). :func:`follow` walks the graph from the conv's node while the value flows through one
consumer that is a normalization, an activation, or a pass-through layer (identity, dropout,
drop-path), and returns the last normalization or activation reached (or a trailing ``Identity``
slot, which timm's blocks keep for an anti-aliasing layer). Roles come from the tables below.

Example:
    >>> from torch import nn
    >>> from antialiased.models.antialias._graphs import shallow_graph
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, 2), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3))
    >>> graph = shallow_graph(net)
    >>> conv = next(n for n in graph.nodes if n.op == "call_module")
    >>> follow(conv, net).target
    '2'
"""
from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

__all__ = ["NORM_TYPES", "ACTIVATION_NAMES", "PASS_THROUGH_NAMES", "role", "follow"]

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
# Class names also recognised (torchvision's FrozenBatchNorm2d, timm's BatchNormAct2d, LayerNorm2d...),
# unless they name a conv block too (torchvision's Conv2dNormActivation is a conv, not a norm).
NORM_NAME_PARTS = ("BatchNorm", "GroupNorm", "LayerNorm", "InstanceNorm", "NormAct", "RmsNorm", "RMSNorm")
ACTIVATION_NAMES = frozenset({
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Swish",
    "Mish", "Hardswish", "HardSwish", "Hardsigmoid", "HardSigmoid", "Sigmoid", "Tanh", "Softplus",
    "QuickGELU", "GELUTanh", "HardMish", "SwishMe", "MishMe", "HardSwishMe", "Threshold", "Hardtanh",
})
PASS_THROUGH_NAMES = frozenset({"Identity", "Dropout", "Dropout2d", "Dropout1d", "Dropout3d", "DropPath",
                                "DropBlock2d", "StochasticDepth", "AlphaDropout"})
_ACTIVATION_FUNCTIONS = {
    F.relu, F.relu_, torch.relu, torch.relu_, F.relu6, F.silu, F.gelu, F.hardswish, F.leaky_relu,
    F.elu, F.selu, F.mish, F.hardtanh, torch.sigmoid, torch.tanh, F.softplus,
}
_ACTIVATION_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_"}
_NORM_FUNCTIONS = {F.batch_norm, F.group_norm, F.layer_norm, F.instance_norm}


def _module_role(module: nn.Module) -> str | None:
    name = type(module).__name__
    if isinstance(module, NORM_TYPES) or (any(part in name for part in NORM_NAME_PARTS) and "Conv" not in name):
        return "norm"
    if name in ACTIVATION_NAMES:
        return "act"
    if name in PASS_THROUGH_NAMES or isinstance(module, (nn.Identity, nn.modules.dropout._DropoutNd)):
        return "pass"
    return None


def role(node: fx.Node, owner: nn.Module) -> str | None:
    """``"norm"``, ``"act"``, ``"pass"`` (a layer the value passes through unchanged) or None."""
    if node.op == "call_module":
        return _module_role(owner.get_submodule(node.target))
    if node.op == "call_function":
        return "act" if node.target in _ACTIVATION_FUNCTIONS else "norm" if node.target in _NORM_FUNCTIONS else None
    if node.op == "call_method":
        return "act" if node.target in _ACTIVATION_METHODS else None
    return None


def _is_identity(node: fx.Node, owner: nn.Module) -> bool:
    return node.op == "call_module" and type(owner.get_submodule(node.target)) is nn.Identity


def _chain(node: fx.Node, owner: nn.Module) -> list[tuple[fx.Node, str]]:
    """The nodes the value flows through from ``node`` while each is its only consumer and has a role."""
    chain = []
    while len(node.users) == 1:
        (user,) = node.users
        kind = role(user, owner)
        if kind is None or user.args[:1] != (node,):
            break
        chain.append((user, kind))
        node = user
    return chain


def follow(node: fx.Node, owner: nn.Module) -> fx.Node:
    """The last normalization/activation after ``node`` (``node`` itself if none; see the module doc)."""
    chain = _chain(node, owner)
    stop = max((i for i, (_, kind) in enumerate(chain) if kind in ("norm", "act")), default=-1)
    if stop + 1 < len(chain) and _is_identity(chain[stop + 1][0], owner):
        stop += 1  # an empty slot right behind: the place the model's authors left for this layer
    return chain[stop][0] if stop >= 0 else node


def reaches_output(node: fx.Node) -> bool:
    """Whether ``node``'s value is the graph's output (and used nowhere else)."""
    return len(node.users) == 1 and next(iter(node.users)).op == "output"
