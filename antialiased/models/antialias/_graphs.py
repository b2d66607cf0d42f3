"""Each module's own forward as a graph, and the rewrites that need one.

A module's *shallow graph* is its forward traced by ``torch.fx`` with every submodule kept as a
leaf: the graph shows which children it calls, in which order, and the functions it calls itself
(``F.max_pool2d``...). A plain ``nn.Sequential`` gets its chain without tracing. Graphs are
traced only where needed and cached per module path (:class:`GraphIndex`).

When a new layer must go between two calls of a module's forward (a block whose ``relu`` serves
two call sites), that module, and only that one, runs its edited graph as its forward
(:func:`keyed_graph_module`): the same object, an instance of its own class (now the base of
``Antialiased<Class>``, see ``_keep_class``), with the same children, parameters and buffers in
the same order, so the state-dict keys of the model do not change.

Example:
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3))
    >>> [n.target for n in shallow_graph(net).nodes if n.op == "call_module"]
    ['0', '1', '2', '3']
"""
from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from antialiased.models.antialias._keep_class import run_graph_as_forward

__all__ = [
    "ShallowTracer",
    "shallow_graph",
    "is_plain_sequential",
    "is_torch_module",
    "GraphIndex",
    "keyed_graph_module",
    "modules_called",
]


class ShallowTracer(fx.Tracer):
    """Traces one module's own forward: every submodule call stays a single ``call_module`` node."""

    def __init__(self, root: nn.Module | None = None) -> None:  # no argument: as fx re-creates it when unpickling
        super().__init__()
        self._traced_root = root

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return m is not self._traced_root if self._traced_root is not None else super().is_leaf_module(m, module_qualified_name)


def is_plain_sequential(module: nn.Module) -> bool:
    """An ``nn.Sequential`` (or subclass) that runs its children in order with the stock forward."""
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def is_torch_module(module: nn.Module) -> bool:
    """A layer of ``torch.nn`` itself (its forward is torch's), which calls no submodules of its own."""
    defined_in = getattr(type(module).forward, "__module__", None) or ""  # None for generated code
    return defined_in.startswith("torch.nn.modules") and not isinstance(
        module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    )


def _sequential_graph(module: nn.Sequential) -> fx.Graph:
    graph = fx.Graph()
    value = graph.placeholder("input")
    for name in module._modules:
        value = graph.call_module(name, (value,))
    graph.output(value)
    return graph


def shallow_graph(module: nn.Module) -> fx.Graph:
    """The module's own forward as a graph (children as leaves); raises what tracing raises.

    Tracing runs the forward's Python code, which may update real buffers in place (timm's
    BatchNormAct2d counts ``num_batches_tracked`` up): every buffer is put back as it was.
    """
    if is_plain_sequential(module):
        return _sequential_graph(module)
    saved = [(buffer, buffer.detach().clone()) for buffer in module.buffers() if buffer.device.type != "meta"]
    try:
        return ShallowTracer(module).trace(module)
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def _graph_text(module: nn.Module, training: bool) -> str:
    was = module.training
    module.training = training
    try:
        return str(shallow_graph(module))
    finally:
        module.training = was


def modules_called(graph: fx.Graph) -> dict[str, int]:
    """How many times the graph calls each submodule target."""
    counts: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            counts[node.target] = counts.get(node.target, 0) + 1
    return counts


class GraphIndex:
    """Shallow graphs of a model's modules, traced on demand and cached by module path.

    ``graph(path)`` returns the graph, or None when the forward cannot be traced (the reason is
    kept in ``errors``); ``owner(path)`` finds the module whose forward calls ``path``.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.graphs: dict[str, fx.Graph | None] = {}
        self.errors: dict[str, str] = {}

    def module(self, path: str) -> nn.Module:
        return self.model.get_submodule(path) if path else self.model

    def graph(self, path: str) -> fx.Graph | None:
        if path not in self.graphs:
            try:
                self.graphs[path] = shallow_graph(self.module(path))
            except Exception as err:  # noqa: BLE001 - any failure to trace means: use module rules
                self.graphs[path] = None
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                self.errors[path] = f"{type(err).__name__}: {first[:200]}"
        return self.graphs[path]

    def replace(self, path: str, module: nn.Module, graph: fx.Graph | None = None) -> None:
        """Put ``module`` at ``path`` (a new child of its parent); forget cached graphs of that subtree."""
        parent, _, name = path.rpartition(".")
        if path:
            setattr(self.module(parent), name, module)
        else:
            self.model = module
        for key in [k for k in self.graphs if k == path or k.startswith(path + ".") or not path]:
            del self.graphs[key]
        if graph is not None:
            self.graphs[path] = graph

    def owner(self, path: str) -> tuple[str, fx.Node] | None:
        """``(owner path, call node)``: the nearest ancestor whose forward calls ``path`` exactly once."""
        parts = path.split(".")
        for cut in range(len(parts) - 1, -1, -1):
            owner, target = ".".join(parts[:cut]), ".".join(parts[cut:])
            if type(self.module(owner)).forward is nn.Module.forward:
                continue  # a ModuleList/ModuleDict: its parent calls into it
            graph = self.graph(owner)
            if graph is None:
                return None
            calls = [n for n in graph.nodes if n.op == "call_module" and n.target == target]
            if len(calls) == 1:
                return owner, calls[0]
            if calls:
                return None
        return None

    def depends_on_training(self, path: str) -> bool:
        """Whether the module's forward takes other paths in eval mode than in training mode."""
        module = self.module(path)
        return not is_plain_sequential(module) and _graph_text(module, True) != _graph_text(module, False)


def keyed_graph_module(owner: nn.Module, graph: fx.Graph) -> nn.Module:
    """``owner``, now running ``graph`` as its forward, with its class kept as a base (``_keep_class``).

    The same object is returned: its children, parameters, buffers (their order, the ones this
    mode does not call, non-persistent ones), hooks and own attributes are untouched, so the state
    dict is the owner's, key for key, and ``isinstance(owner, TheirClass)`` stays true.
    """
    return run_graph_as_forward(owner, graph)


# Functions a traced forward may call that subsample, by graph target.
FUNCTIONAL_POOLS: dict[object, tuple[str, int]] = {
    F.max_pool1d: ("max_pool", 1),
    F.max_pool2d: ("max_pool", 2),
    F.max_pool3d: ("max_pool", 3),
    torch.max_pool1d: ("max_pool", 1),
    torch.max_pool2d: ("max_pool", 2),
    torch.max_pool3d: ("max_pool", 3),
    F.avg_pool1d: ("avg_pool", 1),
    F.avg_pool2d: ("avg_pool", 2),
    F.avg_pool3d: ("avg_pool", 3),
}
FUNCTIONAL_NOTES: dict[object, tuple[str, str]] = {
    F.adaptive_avg_pool1d: ("adaptive_pool", "F.adaptive_avg_pool1d"),
    F.adaptive_avg_pool2d: ("adaptive_pool", "F.adaptive_avg_pool2d"),
    F.adaptive_avg_pool3d: ("adaptive_pool", "F.adaptive_avg_pool3d"),
    F.adaptive_max_pool1d: ("adaptive_pool", "F.adaptive_max_pool1d"),
    F.adaptive_max_pool2d: ("adaptive_pool", "F.adaptive_max_pool2d"),
    F.adaptive_max_pool3d: ("adaptive_pool", "F.adaptive_max_pool3d"),
    F.lp_pool2d: ("lp_pool", "F.lp_pool2d"),
    F.conv1d: ("conv", "F.conv1d"),
    F.conv2d: ("conv", "F.conv2d"),
    F.conv3d: ("conv", "F.conv3d"),
    F.interpolate: ("interpolate", "F.interpolate"),
    F.pixel_unshuffle: ("space_to_depth", "F.pixel_unshuffle"),
    operator.getitem: ("slice", "strided slicing"),
}
