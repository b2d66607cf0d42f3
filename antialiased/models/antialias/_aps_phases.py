"""The phase hand-off: polyphase layers that must agree get one phase, through the model's traced graph.

Two things need a phase from elsewhere (layers take part through the protocol of
:mod:`antialiased.layers.polyphase`: ``phase_role`` ``"down"`` or ``"up"``):

- **Branches that meet.** Where the outputs of two subsamplings meet (an add, a concatenation,
  any op with both upstream), they must keep the same phase, or the two shifts disagree. Every
  node's *nearest* subsamplings (the last ones on each path to it) are collected; a node with
  several unites them in a group; the subsamplings of a group get their inputs' nearest ones
  united too (their inputs must be shifted alike). The first of a group in graph order returns its
  phase (``return_phase=True``); the others take it as ``phase=``.
- **Upsamplings** (APS-U). An upsampling by ``s`` undoes the subsamplings on its input's data path
  whose strides multiply to ``s`` (the last applied first): a U-Net decoder's upsampling undoes the
  encoder level it returns to; DeepLabV3's final 8x upsampling undoes three levels at once and gets
  their composed phase (``compose_phases``: finest first). After it, the nearest subsamplings of
  its output are those below the ones it undid, so a skip connection from that level meets it as
  an equal. The pairing follows the data, not the order of layers in the model.

A model is traced through its blocks (torch.nn layers and polyphase layers stay single calls) to
find both; the smallest module holding each group or pairing then runs its edited trace as its
forward (same state-dict keys), in which the phase is handed over.

Example:
    >>> from torch import nn
    >>> from antialiased.layers.polyphase import AdaptivePolyphaseSampling, PolyphaseUpsampling
    >>> class Tiny(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.down, self.up = AdaptivePolyphaseSampling(2), PolyphaseUpsampling(2)
    ...     def forward(self, x):
    ...         return self.up(self.down(x)) + x
    >>> gm = torch.fx.GraphModule(Tiny(), SamplerTracer().trace(Tiny()))
    >>> pair_upsamplings(gm)
    [('up', ['down'], (2, 2))]
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx
from torch import nn

from antialiased.layers.polyphase import adaptive_polyphase_sampling, compose_phases, phase_role
from antialiased.models.antialias._graphs import is_torch_module, keyed_graph_module

__all__ = ["SamplerTracer", "Undo", "nearest_samplers", "share_phases", "pair_upsamplings", "share_model_phases"]

Node = torch.fx.Node

torch.fx.wrap("compose_phases")


class SamplerTracer(torch.fx.Tracer):
    """Traces through containers and blocks; torch.nn layers and polyphase layers stay single calls."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        # A GraphModule's generated forward has no __module__: it is traced through like a block.
        defined_in = getattr(type(m).forward, "__module__", None) or ""
        return phase_role(m) is not None or (defined_in.startswith("torch.nn") and is_torch_module(m))


def _role(root: nn.Module, node: Node) -> str | None:
    if node.op == "call_module":
        return phase_role(root.get_submodule(node.target))
    return "down" if node.op == "call_function" and node.target is adaptive_polyphase_sampling else None


def _stride(root: nn.Module, node: Node) -> tuple[int, int]:
    if node.op == "call_module":
        stride = root.get_submodule(node.target).stride
    else:
        stride = node.kwargs.get("stride", node.args[1] if len(node.args) > 1 else 2)
    return tuple(stride) if isinstance(stride, (tuple, list)) else (stride, stride)


@dataclass(frozen=True)
class Undo:
    """What an upsampling undoes: its subsamplings, level by level (the last applied first).

    ``rest``: the nearest subsamplings after it; ``reason``: why none could be paired (or None).
    """

    up: Node
    levels: tuple[frozenset, ...]
    rest: frozenset
    reason: str | None = None


def _undo(root: nn.Module, up: Node, nearest: dict[Node, frozenset]) -> Undo:
    want, got = _stride(root, up), (1, 1)
    level, levels = nearest.get(up.args[0], frozenset()) if up.args else frozenset(), []
    while got != want and level:
        strides = {_stride(root, m) for m in level}
        if len(strides) > 1:
            return Undo(up, (), level, f"subsamplings of different strides {sorted(strides)} meet on its input's path")
        (sh, sw), = strides
        got = (got[0] * sh, got[1] * sw)
        if want[0] % got[0] or want[1] % got[1]:
            break
        levels.append(level)
        level = frozenset().union(*(nearest[m.args[0]] for m in level))
    if got != want:
        found = (f"the adaptive polyphase subsamplings on its input's path (traced) subsample by {got}" if levels
                 else "no adaptive polyphase subsampling is on its input's path (traced)")
        return Undo(up, (), nearest.get(up.args[0], frozenset()), f"it upsamples by {want} but {found}")
    return Undo(up, tuple(levels), level)


def nearest_samplers(root: nn.Module, graph: torch.fx.Graph):
    """``(nearest, samplers, undos)``: each node's nearest subsamplings, the subsamplings, each upsampling's Undo."""
    nearest: dict[Node, frozenset] = {}
    samplers, undos = [], []
    for node in graph.nodes:
        role = _role(root, node)
        if role == "down":
            samplers.append(node)
            nearest[node] = frozenset([node])
        elif role == "up":
            undo = _undo(root, node, nearest)
            undos.append(undo)
            nearest[node] = undo.rest
        else:
            nearest[node] = frozenset().union(*(nearest[i] for i in node.all_input_nodes))
    return nearest, samplers, undos


def _groups(root: nn.Module, graph: torch.fx.Graph) -> list[list[Node]]:
    nearest, samplers, _ = nearest_samplers(root, graph)
    parent = {s: s for s in samplers}

    def find(s: Node) -> Node:
        while parent[s] is not s:
            s = parent[s]
        return s

    def unite(members: frozenset) -> bool:
        roots = sorted({find(m) for m in members}, key=samplers.index)
        for r in roots[1:]:
            parent[r] = roots[0]
        return len(roots) > 1

    for node in graph.nodes:  # the output node gathers separate heads: not a meeting point
        if node.op != "output" and _role(root, node) != "down" and len(nearest[node]) > 1:
            unite(nearest[node])
    grown = True
    while grown:  # samplers of a group need inputs shifted alike: unite their inputs' samplers too
        grown = False
        for leader in {find(s) for s in samplers}:
            members = [s for s in samplers if find(s) is leader]
            if len(members) > 1:
                grown |= unite(frozenset().union(*(nearest[m.args[0]] for m in members)))
    groups: dict[Node, list[Node]] = {}
    for s in samplers:
        groups.setdefault(find(s), []).append(s)
    return [g for g in groups.values() if len(g) > 1]


def phase_source(node: Node) -> Node:
    """The node holding a subsampling's phase: the one it was handed, or its own (made to return it)."""
    if node.kwargs.get("phase") is not None:
        return node.kwargs["phase"]
    if node.kwargs.get("return_phase"):  # wired by an earlier pass
        return next(u for u in node.users if u.target is operator.getitem and u.args[1] == 1)
    graph = node.graph
    with graph.inserting_after(node):
        out = graph.call_function(operator.getitem, (node, 0))
    with graph.inserting_after(out):
        phase = graph.call_function(operator.getitem, (node, 1))
    node.replace_all_uses_with(out, delete_user_cb=lambda user: user not in (out, phase))
    node.kwargs = {**node.kwargs, "return_phase": True}
    return phase


def _hand_off(group: list[Node]) -> bool:
    """Wire the leader's phase into the followers; False if they already had it."""
    leader, followers = group[0], group[1:]
    if leader.kwargs.get("return_phase") and all(n.kwargs.get("phase") is not None for n in followers):
        return False
    phase = phase_source(leader)
    for node in followers:
        node.kwargs = {**node.kwargs, "phase": phase}
    return True


def _label(node: Node) -> str:
    return str(node.target) if node.op == "call_module" else node.name


def _first(level: frozenset, order: dict[Node, int]) -> Node:
    return min(level, key=order.__getitem__)


def _hand_to_upsampling(root: nn.Module, undo: Undo, order: dict[Node, int]) -> bool:
    """Give the upsampling the (composed) phase of the subsamplings it undoes; False if it had it."""
    if undo.up.kwargs.get("phase") is not None:
        return False
    finest_first = list(reversed(undo.levels))
    phases = [phase_source(_first(level, order)) for level in finest_first]
    phase = phases[0]
    if len(phases) > 1:
        strides = [_stride(root, _first(level, order)) for level in finest_first]
        with undo.up.graph.inserting_before(undo.up):
            phase = undo.up.graph.call_function(compose_phases, (phases, strides))
    undo.up.kwargs = {**undo.up.kwargs, "phase": phase}
    return True


def share_phases(gm: torch.fx.GraphModule) -> list[list[str]]:
    """Make the subsamplings whose outputs meet in ``gm``'s graph use one phase; returns the groups.

    Each group is listed by module path (or node name for functional calls), leader first.
    """
    groups = [group for group in _groups(gm, gm.graph) if _hand_off(group)]
    if groups:
        gm.graph.lint()
        gm.recompile()
    return [[_label(n) for n in group] for group in groups]


def pair_upsamplings(gm: torch.fx.GraphModule) -> list[tuple[str, list[str] | str, tuple[int, int]]]:
    """Hand each upsampling of ``gm``'s graph the phase of the subsamplings it undoes (call after share_phases).

    Returns ``(upsampling, subsamplings finest first, factor)`` per upsampling paired now, and
    ``(upsampling, reason, factor)`` per upsampling that has no pairing.
    """
    _, _, undos = nearest_samplers(gm, gm.graph)
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    result: list[tuple[str, list[str] | str, tuple[int, int]]] = []
    for undo in undos:
        factor = _stride(gm, undo.up)
        if undo.reason is not None:
            result.append((_label(undo.up), undo.reason, factor))
        elif _hand_to_upsampling(gm, undo, order):
            result.append((_label(undo.up), [_label(_first(lv, order)) for lv in reversed(undo.levels)], factor))
    if result:
        gm.graph.lint()
        gm.recompile()
    return result


# -- the model-wide pass ------------------------------------------------------------------------

def _polyphase_in(module: nn.Module) -> int:
    return sum(phase_role(m) is not None for m in module.modules())


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200] if text else ''}"


def _regions(model: nn.Module) -> tuple[list[tuple[str, torch.fx.Graph]], dict[str, str]]:
    """Graphs of the largest traceable subtrees holding 2+ polyphase layers; untraceable ones, with why."""
    regions, failed = [], {}
    stack = [("", model)]
    while stack:
        path, module = stack.pop()
        if _polyphase_in(module) < 2:
            continue
        children = [(f"{path}.{name}" if path else name, child) for name, child in module.named_children()]
        if type(module).forward is nn.Module.forward:  # a ModuleList / ModuleDict: its parent calls into it
            stack += children
            continue
        try:
            regions.append((path, SamplerTracer().trace(module)))
        except Exception as err:  # noqa: BLE001 - untraceable: look inside it
            failed[path] = _first_line(err)
            stack += children
    return regions, failed


def _holder(targets: list[str]) -> str:
    """The deepest module path containing every one of ``targets``' parents."""
    parents = [t.split(".")[:-1] for t in targets]
    common = []
    for parts in zip(*parents):
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    return ".".join(common)


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix and path else prefix or path


def _holders(model: nn.Module) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Modules to edit (outermost), untraceable ones with why, upsamplings without a pairing with why."""
    holders, unpaired = set(), {}
    regions, failed = _regions(model)
    for path, graph in regions:
        root = model.get_submodule(path) if path else model
        members = [list(group) for group in _groups(root, graph)]
        for undo in nearest_samplers(root, graph)[2]:
            if undo.reason is None:
                members.append([undo.up, *frozenset().union(*undo.levels)])
            else:
                unpaired[_join(path, _label(undo.up))] = undo.reason
        for nodes in members:
            holders.add(_join(path, _holder([str(n.target) for n in nodes if n.op == "call_module"])))
    outermost = [h for h in holders if not any(o != h and (not o or h.startswith(o + ".")) for o in holders)]
    culprits = {p: why for p, why in failed.items() if not any(q.startswith(p + ".") or (not p and q) for q in failed)}
    return sorted(outermost), culprits, unpaired


def _traced_in_both_modes(module: nn.Module) -> torch.fx.Graph | str:
    modes = {m: m.training for m in module.modules()}
    try:
        graphs = [str(SamplerTracer().trace(module.train(mode))) for mode in (True, False)]
    finally:
        for m, mode in modes.items():
            m.training = mode
    if graphs[0] != graphs[1]:
        return "its forward takes other paths in training than in eval mode; one graph would freeze one of them"
    return SamplerTracer().trace(module)


class _Report:
    """The summary entries of the hand-off (kind ``"phase"``); a no-op without a summary."""

    def __init__(self, summary: object | None) -> None:
        self.summary = summary
        self.paired: set[str] = set()
        self.unpaired: dict[str, str] = {}

    def changed(self, path: str, before: str, after: str) -> None:
        if self.summary is not None:
            self.summary.add_change(path, "phase", before, after)

    def left(self, path: str, before: str, reason: str) -> None:
        if self.summary is not None:
            self.summary.add_left_alone(path, "phase", before, reason)

    def groups(self, prefix: str, groups: list[list[str]]) -> None:
        for group in groups:
            self.changed(_join(prefix, group[0]), "picks its own phase", "hands its phase to "
                         + ", ".join(_join(prefix, g) for g in group[1:]) + " (their outputs meet)")

    def pairings(self, prefix: str, pairings: list) -> None:
        for up, sources, factor in pairings:
            path = _join(prefix, up)
            if isinstance(sources, str):
                self.unpaired.setdefault(path, sources)
                continue
            self.paired.add(path)
            which = ", ".join(_join(prefix, s) for s in sources)
            how = f"the phase of {which}" if len(sources) == 1 else f"the composed phase of {which} (finest first)"
            self.changed(path, "zero-inserts on phase 0", f"zero-inserts on {how}: undoes {factor[0]}x{factor[1]}")

    def upsamplings_left(self, model: nn.Module) -> None:
        for path, module in model.named_modules():
            if phase_role(module) == "up" and path not in self.paired:
                why = self.unpaired.get(path, "no adaptive polyphase subsampling was found on its input's path "
                                              "(or the path could not be traced)")
                self.left(path, "zero-inserts on phase 0", f"{why}: it upsamples on the fixed grid, so shifts may "
                                                          f"change the output")


def share_model_phases(model: nn.Module, summary: object | None = None) -> nn.Module:
    """Hand phases between the polyphase layers of ``model`` (branches that meet, upsamplings); returns it.

    The smallest module holding each group or pairing runs its edited trace as its forward (same
    object, same state-dict keys).
    """
    report = _Report(summary)
    holders, culprits, report.unpaired = _holders(model)
    for path, why in culprits.items():
        report.left(path, "the forward cannot be traced", f"{why}; polyphase layers whose outputs meet inside it "
                    f"cannot share a phase, so shifts may change the output")
    for path in holders:
        module = model.get_submodule(path) if path else model
        graph = _traced_in_both_modes(module)
        if isinstance(graph, str):
            report.left(path, type(module).__name__, f"{graph}: its polyphase layers cannot share a phase")
            continue
        scratch = torch.fx.GraphModule(module, graph)  # share_phases and pair_upsamplings edit its graph
        groups, pairings = share_phases(scratch), pair_upsamplings(scratch)
        gm = keyed_graph_module(module, scratch.graph)  # the module runs the edited graph, keeping its class
        report.groups(path, groups)
        report.pairings(path, pairings)
        if path:
            parent, _, name = path.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, name, gm)
        else:
            model = gm
        if summary is not None and path not in summary.graph_modules:
            summary.graph_modules.append(path)
    report.upsamplings_left(model)
    return model
