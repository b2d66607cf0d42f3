"""Functional calls that may be up sites: their shapes from the probe, and graphs faithful to the call.

An ``F.interpolate(x, size=...)`` call's factor is only known at run time, and a call from a 1x1
map is a broadcast, not an upsampling: :func:`call_shapes` gives each call node of a module's
traced forward the ``(input, output)`` shapes the engine's probe recorded for that module's calls
of the same function, in order (nothing where the counts differ).

Turning a call into a layer means running the module's traced graph as its forward. A graph traced
with every argument symbolic follows ``if skip is not None:`` as if the argument were a tensor
(segmentation_models_pytorch's last U-Net decoder block is called with ``skip=None``):
:func:`specialized_graph` traces again with the arguments the probe saw as None fixed to None.

Example:
    >>> import torch.nn.functional as F
    >>> from torch import nn
    >>> class Block(nn.Module):
    ...     def forward(self, x, skip=None):
    ...         x = F.interpolate(x, scale_factor=2)
    ...         return x if skip is None else x + skip
    >>> graph = specialized_graph(Block(), frozenset({"skip"}))
    >>> [n.op for n in graph.nodes if n.op != "placeholder"]
    ['call_function', 'call_function', 'output']
"""
from __future__ import annotations

import inspect

import torch
import torch.fx as fx
from torch import nn

from antialiased.errors import ModelError
from antialiased.models.antialias._graphs import ShallowTracer

__all__ = ["call_shapes", "specialized_graph", "still_none"]


def still_none(value: object, message: str) -> None:
    """The check a specialized forward makes: an argument traced as None must still be None.

    Traced again (symbolically), it checks nothing: the traced graph has no branch left to guard.
    """
    if value is not None and not isinstance(value, fx.Proxy):
        raise ModelError(f"{message}; antialias() traced this forward with the argument None (as the model called "
                         f"it then), so it cannot take a value now: convert the model as it will be called")


_FX_ASSERT_IS_NONE = getattr(torch.fx._symbolic_trace, "_assert_is_none", None)


def call_shapes(calls: list[tuple[object, tuple, tuple]], graph: fx.Graph, functions: set) -> dict[str, tuple]:
    """Node name -> ``(input shape, output shape)`` for the graph's calls of ``functions``, in call order."""
    shapes: dict[str, tuple] = {}
    for function in functions:
        nodes = [n for n in graph.nodes if n.op == "call_function" and n.target is function]
        seen = [(before, after) for f, before, after in calls if f is function]
        if nodes and len(nodes) == len(seen):
            shapes.update({node.name: pair for node, pair in zip(nodes, seen)})
    return shapes


def specialized_graph(module: nn.Module, none_args: frozenset[str]) -> fx.Graph | None:
    """``module``'s forward traced with the arguments named in ``none_args`` fixed to None (None: none apply).

    The traced forward keeps those arguments (fx checks at run time that they are still None)
    under their own names, so callers that pass them by keyword keep working.
    """
    names = [p for p in inspect.signature(module.forward).parameters if p in none_args]
    if not names:
        return None
    saved = [(buffer, buffer.detach().clone()) for buffer in module.buffers() if buffer.device.type != "meta"]
    try:
        graph = ShallowTracer(module).trace(module, concrete_args={name: None for name in names})
    finally:
        with torch.no_grad():  # tracing may count batch-norm batches up: put every buffer back
            for buffer, value in saved:
                buffer.copy_(value)
    for node in graph.nodes:  # fx renames a fixed argument 'skip' to 'skip_1': give it its name back
        base = node.target.rsplit("_", 1)[0] if node.op == "placeholder" else None
        if base in names and node.target != base:
            node.target = base
        if node.op == "call_function" and node.target is _FX_ASSERT_IS_NONE:
            # fx's own check is a torch.fx.wrap-ped function: traced again inside a generated forward, fx would
            # register it under a dotted name and fail every later trace. A plain function checks the same.
            node.target = still_none
    return graph
