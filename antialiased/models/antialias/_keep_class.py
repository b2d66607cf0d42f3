"""A module that runs an edited ``torch.fx`` graph as its forward and stays an instance of its class.

When ``antialias()`` must put a new call between two calls of a module's own forward (a block
whose ``relu`` serves two call sites, a functional pool), the module keeps its identity: the same
object, its class swapped for a subclass of that class, named ``Antialiased<Class>`` (made from the
user's class once: never ``AntialiasedAntialiased...``), whose ``forward`` is the Python code that
``torch.fx`` generates from the edited graph. That code calls ``self.<child>``, which the instance
has, so nothing else changes: children, parameters, buffers, hooks, the user's own methods and
attributes, state-dict keys. ``isinstance(block, BasicBlock)`` stays true.

Each rewritten module gets a class of its own (its code is its own), as ``torch.fx.GraphModule``
does. Such a class is not importable by name, so pickling goes through :func:`_rebuild` (the
user's class, which must be importable, and the generated source); ``deepcopy`` keeps the class.

Example:
    >>> import torch.fx as fx
    >>> from torch import nn
    >>> class Block(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.conv, self.scale = nn.Conv2d(3, 3, 1), 2.0
    ...     def forward(self, x):
    ...         return self.conv(x) * self.scale
    >>> block = Block()
    >>> graph = fx.symbolic_trace(block).graph
    >>> same = run_graph_as_forward(block, graph)
    >>> same is block, isinstance(block, Block), type(block).__name__, block.scale
    (True, True, 'AntialiasedBlock', 2.0)
    >>> type(run_graph_as_forward(block, graph)).__mro__[1] is Block  # a second rewrite: still one level
    True
"""
from __future__ import annotations

import copy
import importlib
import itertools
import linecache
import types
from typing import Any, Callable

import torch.fx as fx
from torch import nn

__all__ = ["PREFIX", "user_class", "rewritten_name", "runs_generated_forward", "run_graph_as_forward"]

#: The name prefix of a rewritten module's class.
PREFIX = "Antialiased"
# Class attributes of a rewritten class: the user's class it extends, and its forward's source and globals.
_BASE = "_antialias_user_class"
_SOURCE = "_antialias_forward_source"
_GLOBALS = "_antialias_forward_globals"
_numbers = itertools.count()


def user_class(module: nn.Module) -> type:
    """The class ``module`` had before any rewrite (its own class if it was never rewritten)."""
    return vars(type(module)).get(_BASE, type(module))


def runs_generated_forward(module: nn.Module) -> bool:
    """Whether ``module``'s forward is code generated from a graph by :func:`run_graph_as_forward`."""
    return _BASE in vars(type(module))


def rewritten_name(cls: type) -> str:
    """``Antialiased<Class>``, or the class's own name if it already starts with the prefix.

    Example:
        >>> rewritten_name(nn.Conv2d), rewritten_name(type("AntialiasedNet", (nn.Module,), {}))
        ('AntialiasedConv2d', 'AntialiasedNet')
    """
    return cls.__name__ if cls.__name__.startswith(PREFIX) else PREFIX + cls.__name__


def _compile_forward(source: str, globals_: dict[str, Any], name: str) -> Callable:
    # A file name of its own, with the source in linecache: tracebacks and inspect show the code.
    filename = f"<antialiased {name}.forward #{next(_numbers)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = dict(globals_)
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)  # noqa: S102 - torch.fx's own output
    return namespace["forward"]


def _portable(globals_: dict[str, Any]) -> dict[str, Any]:
    """The forward's globals with modules as their names, so that the record pickles and deep-copies."""
    return {k: ("module", v.__name__) if isinstance(v, types.ModuleType) else ("object", v)
            for k, v in globals_.items()}


def _resolved(portable: dict[str, Any]) -> dict[str, Any]:
    return {k: importlib.import_module(v) if how == "module" else v for k, (how, v) in portable.items()}


def _rewritten_class(base: type, source: str, portable: dict[str, Any]) -> type:
    name = rewritten_name(base)
    namespace = {
        "forward": _compile_forward(source, _resolved(portable), name),
        "__module__": base.__module__, "__qualname__": name, "__doc__": base.__doc__,
        _BASE: base, _SOURCE: source, _GLOBALS: portable,
        "__reduce_ex__": _reduce_ex, "__deepcopy__": _deepcopy,
    }
    return type(name, (base,), namespace)


def _rebuild(base: type, source: str, portable: dict[str, Any]) -> nn.Module:
    """Unpickling: a new, empty instance of a rewritten class (pickle then restores its state)."""
    cls = _rewritten_class(base, source, portable)
    return cls.__new__(cls)


def _reduce_ex(self: nn.Module, protocol: int) -> tuple:
    cls = type(self)
    return _rebuild, (vars(cls)[_BASE], vars(cls)[_SOURCE], vars(cls)[_GLOBALS]), self.__dict__


def _deepcopy(self: nn.Module, memo: dict[int, Any]) -> nn.Module:
    new = type(self).__new__(type(self))  # the same class: the same generated forward
    memo[id(self)] = new
    new.__setstate__(copy.deepcopy(self.__dict__, memo))
    return new


def run_graph_as_forward(module: nn.Module, graph: fx.Graph) -> nn.Module:
    """Make ``module`` run ``graph`` (traced from it, its calls' targets its own children) as its forward.

    ``module`` itself is returned: its class becomes ``Antialiased<Class>``, a subclass of its own
    class, whose forward is ``graph``'s generated code; its state is not touched. A
    ``torch.fx.GraphModule`` (a model the user traced) just gets the graph, as GraphModules do.
    """
    if isinstance(module, fx.GraphModule) and not runs_generated_forward(module):
        module.graph = graph
        return module
    code = graph.python_code(root_module="self")
    module.__class__ = _rewritten_class(user_class(module), code.src, _portable(code.globals))
    return module
