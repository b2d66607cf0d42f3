"""The APS methods: every subsampling becomes stride 1 + adaptive polyphase sampling.

``"aps"`` (Chaman & Dokmanic, CVPR 2021) and ``"aps-lpf"`` (the same with the binomial blur of
``filter_size`` taps before the sampling) rewrite every subsampling site, the stem included (a
fixed-grid stem would break invariance):

- strided conv -> the conv at stride 1, its normalization and activation, then APS (a pad-free
  1x1 conv samples its input first: the same function, computed at the low resolution);
- ``MaxPool(k, s)`` -> ``MaxPool(k, 1)`` + APS;
- ``AvgPool(k, s)`` -> ``AvgPool(k, 1)`` + APS (``"aps"``: the average is part of the model) or
  blur + APS (``"aps-lpf"``: the blur replaces the box filter, as ``"blurpool"`` does; where that
  would change the output size, ``AvgPool(k, 1)`` + blur + APS).

``finalize`` then makes branches that meet pick the same phase (:func:`share_model_phases`) and, with
``circular=True``, converts every convolution and pool to circular padding (``_circular``).

**Exactness.** With ``circular=True``, a model whose sides are divisible by its total stride and
that ends in global pooling gives the same logits for every circular shift of its input (up to
float rounding, and as long as no two polyphase components tie in norm).
"""
from __future__ import annotations

import math
import operator
from typing import Callable

import torch.fx
from torch import nn

from antialiased.layers.polyphase import AdaptivePolyphaseSampling, adaptive_polyphase_sampling
from antialiased.models.antialias._circular import make_circular
from antialiased.models.antialias._graphs import is_torch_module, keyed_graph_module
from antialiased.models.antialias._types import Method, Rewrite, RewriteContext, Site, SiteRewriter, Skip

__all__ = ["APS", "APS_LPF", "share_phases", "share_model_phases"]

Node = torch.fx.Node


def _sampler(site: Site, ctx: RewriteContext, lpf: bool) -> AdaptivePolyphaseSampling:
    return AdaptivePolyphaseSampling(
        site.stride[:2], filt_size=ctx.filter_size if lpf else 1, circular=ctx.circular,
        pad_type=None if ctx.circular else ctx.pad_type,
    )


def _pool_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch's pooling output size (with ceil_mode's rule: the last window starts inside the input)."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    return out - 1 if ceil_mode and (out - 1) * s >= n + p else out


def _sampling_keeps_sizes(pool: nn.AvgPool2d, s: int) -> bool:
    """Whether sampling alone (``ceil(n / s)``) gives the pool's output size for every input size."""
    k, p = pool.kernel_size, pool.padding
    if not isinstance(k, int) or not isinstance(p, int):
        return False
    return all(-(-n // s) == _pool_size(n, k, s, p, 1, pool.ceil_mode) for n in range(max(1, k - 2 * p), 65))


def _ceil_mode_pad(pool: nn.MaxPool2d, s: int) -> nn.Module | Skip:
    """-inf on the right so the dense pool has ceil_mode's partial last window, if that gives the size."""
    k, p, d = (getattr(pool, name) for name in ("kernel_size", "padding", "dilation"))
    if not all(isinstance(v, int) for v in (k, p, d)):
        return Skip("ceil_mode with a non-square window: the dense pool + APS would change the output size")
    for n in range(d * (k - 1) + 1 - 2 * p, 65):
        if n > 0 and math.ceil((n + s - 1 + 2 * p - d * (k - 1)) / s) != _pool_size(n, k, s, p, d, True):
            return Skip(f"ceil_mode: the dense pool + APS would change the output size (input side {n})")
    return nn.ConstantPad2d((0, s - 1, 0, s - 1), float("-inf"))


def _two_d(rewriter: Callable[[Site, RewriteContext, bool], Rewrite | Skip], lpf: bool) -> SiteRewriter:
    def rewrite(site: Site, ctx: RewriteContext) -> Rewrite | Skip:
        if site.ndim != 2:
            return Skip(f"adaptive polyphase sampling is 2-D; this {site.ndim}-D subsampling is left as it is")
        return rewriter(site, ctx, lpf)

    rewrite.__name__ = rewriter.__name__
    return rewrite


def _pad_free_pointwise(conv: nn.Module) -> bool:
    padding = conv.padding  # with a 1x1 kernel, 'same' and 'valid' both pad nothing
    return all(k == 1 for k in conv.kernel_size) and (isinstance(padding, str) or not any(padding))


def _conv(site: Site, ctx: RewriteContext, lpf: bool) -> Rewrite | Skip:
    if _pad_free_pointwise(site.module):
        return Rewrite(before=(_sampler(site, ctx, lpf),), stride=(1, 1))
    return Rewrite(stride=(1, 1), after=(_sampler(site, ctx, lpf),), after_followers=True)


def _max_pool(site: Site, ctx: RewriteContext, lpf: bool) -> Rewrite | Skip:
    pool = site.module
    if pool.return_indices:
        return Skip("returns indices (for max-unpooling); a dense pool + APS would change what they index")
    dense = nn.MaxPool2d(pool.kernel_size, stride=1, padding=pool.padding, dilation=pool.dilation)
    if pool.ceil_mode and not ctx.circular:  # circular padding gives ceil(H / s) by itself
        pad = _ceil_mode_pad(pool, site.factor)
        if isinstance(pad, Skip):
            return pad
        return Rewrite(before=(pad,), replace=dense, after=(_sampler(site, ctx, lpf),))
    return Rewrite(replace=dense, after=(_sampler(site, ctx, lpf),))


def _avg_pool(site: Site, ctx: RewriteContext, lpf: bool) -> Rewrite | Skip:
    pool = site.module
    if pool.ceil_mode and not ctx.circular:
        return Skip("ceil_mode average pool: the dense pool + APS would change which windows are averaged")
    if lpf and _sampling_keeps_sizes(pool, site.factor):  # the blur replaces the box filter, as in "blurpool"
        return Rewrite(replace=_sampler(site, ctx, lpf))
    dense = nn.AvgPool2d(pool.kernel_size, stride=1, padding=pool.padding,
                         count_include_pad=pool.count_include_pad, divisor_override=pool.divisor_override)
    return Rewrite(replace=dense, after=(_sampler(site, ctx, lpf),))


# ---------------------------------------------------------------------------------------------
# Phase hand-off. Where the outputs of two samplers meet (an add, a concatenation, any op with
# both upstream), they must keep the same phase. In a graph, every node's *nearest* samplers (the
# last ones on each path to it) are collected; a node with several unites them in a group;
# samplers of a group get their inputs' nearest samplers united too (their inputs must be shifted
# alike). The first sampler of a group in graph order returns its phase; the others take it as
# ``phase=``. A model is traced through its blocks (torch.nn layers and samplers stay single
# calls) to find the groups; the smallest module holding each group is then replaced by a
# GraphModule of that trace (same state-dict keys) in which the phase is handed over.
# ---------------------------------------------------------------------------------------------

class _SamplerTracer(torch.fx.Tracer):
    """Traces through containers and blocks; torch.nn layers and samplers stay single calls."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        # A GraphModule's generated forward has no __module__: it is traced through like a block.
        defined_in = getattr(type(m).forward, "__module__", None) or ""
        return isinstance(m, AdaptivePolyphaseSampling) or (defined_in.startswith("torch.nn") and is_torch_module(m))


def _is_sampler(root: nn.Module, node: Node) -> bool:
    if node.op == "call_module":
        return isinstance(root.get_submodule(node.target), AdaptivePolyphaseSampling)
    return node.op == "call_function" and node.target is adaptive_polyphase_sampling


def _nearest(root: nn.Module, graph: torch.fx.Graph) -> tuple[dict[Node, frozenset], list[Node]]:
    nearest: dict[Node, frozenset] = {}
    samplers = []
    for node in graph.nodes:
        if _is_sampler(root, node):
            samplers.append(node)
            nearest[node] = frozenset([node])
        else:
            nearest[node] = frozenset().union(*(nearest[i] for i in node.all_input_nodes))
    return nearest, samplers


def _groups(root: nn.Module, graph: torch.fx.Graph) -> list[list[Node]]:
    nearest, samplers = _nearest(root, graph)
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
        if node.op != "output" and not _is_sampler(root, node) and len(nearest[node]) > 1:
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


def _phase_of(leader: Node) -> Node:
    """The node holding ``leader``'s phase, making ``leader`` return it if it does not yet."""
    if leader.kwargs.get("return_phase"):  # wired by an earlier pass
        return next(u for u in leader.users if u.target is operator.getitem and u.args[1] == 1)
    graph = leader.graph
    with graph.inserting_after(leader):
        out = graph.call_function(operator.getitem, (leader, 0))
    with graph.inserting_after(out):
        phase = graph.call_function(operator.getitem, (leader, 1))
    leader.replace_all_uses_with(out, delete_user_cb=lambda user: user not in (out, phase))
    leader.kwargs = {**leader.kwargs, "return_phase": True}
    return phase


def _hand_off(group: list[Node]) -> bool:
    """Wire the leader's phase into the followers; False if they already had it."""
    leader, followers = group[0], group[1:]
    if leader.kwargs.get("return_phase") and all(n.kwargs.get("phase") is not None for n in followers):
        return False
    phase = _phase_of(leader)
    for node in followers:
        node.kwargs = {**node.kwargs, "phase": phase}
    return True


def _label(node: Node) -> str:
    return str(node.target) if node.op == "call_module" else node.name


def share_phases(gm: torch.fx.GraphModule) -> list[list[str]]:
    """Make the samplers whose outputs meet in ``gm``'s graph use one phase; returns the groups.

    Each group is listed by module path (or node name for functional calls), leader first.
    """
    groups = [group for group in _groups(gm, gm.graph) if _hand_off(group)]
    if groups:
        gm.graph.lint()
        gm.recompile()
    return [[_label(n) for n in group] for group in groups]


def _samplers_in(module: nn.Module) -> int:
    return sum(isinstance(m, AdaptivePolyphaseSampling) for m in module.modules())


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200] if text else ''}"


def _regions(model: nn.Module) -> tuple[list[tuple[str, torch.fx.Graph]], dict[str, str]]:
    """Graphs of the largest traceable subtrees holding 2+ samplers; untraceable ones, with why."""
    regions, failed = [], {}
    stack = [("", model)]
    while stack:
        path, module = stack.pop()
        if _samplers_in(module) < 2:
            continue
        try:
            regions.append((path, _SamplerTracer().trace(module)))
        except Exception as err:  # noqa: BLE001 - untraceable: look inside it
            failed[path] = _first_line(err)
            stack += [(f"{path}.{name}" if path else name, child) for name, child in module.named_children()]
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


def _holders(model: nn.Module) -> tuple[list[str], dict[str, str]]:
    holders = set()
    regions, failed = _regions(model)
    for path, graph in regions:
        root = model.get_submodule(path) if path else model
        for group in _groups(root, graph):
            holders.add(_join(path, _holder([str(n.target) for n in group if n.op == "call_module"])))
    outermost = [h for h in holders if not any(o != h and (not o or h.startswith(o + ".")) for o in holders)]
    culprits = {p: why for p, why in failed.items() if not any(q.startswith(p + ".") or (not p and q) for q in failed)}
    return sorted(outermost), culprits


def _traced_in_both_modes(module: nn.Module) -> torch.fx.Graph | str:
    modes = {m: m.training for m in module.modules()}
    try:
        graphs = [str(_SamplerTracer().trace(module.train(mode))) for mode in (True, False)]
    finally:
        for m, mode in modes.items():
            m.training = mode
    if graphs[0] != graphs[1]:
        return "its forward takes other paths in training than in eval mode; one graph would freeze one of them"
    return _SamplerTracer().trace(module)


def share_model_phases(model: nn.Module, summary: object | None = None) -> nn.Module:
    """Hand phases between the samplers of ``model`` whose outputs meet; returns the model.

    The smallest module holding each group becomes a GraphModule (same state-dict keys); the
    model itself if the group spans it (then the returned model is a new object).
    """
    holders, culprits = _holders(model)
    for path, why in culprits.items():
        _left_alone(summary, path, "the forward cannot be traced", f"{why}; samplers whose outputs meet inside "
                    f"it cannot share a phase, so shifts may change the output")
    for path in holders:
        module = model.get_submodule(path) if path else model
        graph = _traced_in_both_modes(module)
        if isinstance(graph, str):
            _left_alone(summary, path, type(module).__name__, f"{graph}: its samplers cannot share a phase")
            continue
        gm = keyed_graph_module(module, graph)
        for group in share_phases(gm):
            _changed(summary, _join(path, group[0]), "hands its phase to "
                     + ", ".join(_join(path, g) for g in group[1:]) + " (their outputs meet)")
        if path:
            parent, _, name = path.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, name, gm)
        else:
            model = gm
        if summary is not None and path not in summary.graph_modules:
            summary.graph_modules.append(path)
    return model


def _changed(summary: object | None, path: str, after: str) -> None:
    if summary is not None:
        summary.add_change(path, "phase", "picks its own phase", after)


def _left_alone(summary: object | None, path: str, before: str, reason: str) -> None:
    if summary is not None:
        summary.add_left_alone(path, "phase", before, reason)


def _record_circular(model: nn.Module, summary: object | None) -> None:
    changed, skipped = make_circular(model)
    if summary is None:
        return
    for path, before, after in changed:
        summary.add_change(path, "padding", before, after)
    for path, reason in skipped:
        summary.add_left_alone(path, "padding", type(model.get_submodule(path)).__name__, reason)


def _finalize(model: nn.Module, ctx: RewriteContext) -> nn.Module:
    if ctx.circular:
        _record_circular(model, ctx.summary)
    return share_model_phases(model, ctx.summary)


def _method(name: str, lpf: bool, description: str) -> Method:
    return Method(
        name=name, description=description,
        rewriters={"conv": _two_d(_conv, lpf), "max_pool": _two_d(_max_pool, lpf), "avg_pool": _two_d(_avg_pool, lpf)},
        converts_stem=True, supports_circular=True, finalize=_finalize,
    )


APS = _method("aps", False, "adaptive polyphase sampling: stride 1, then keep the largest-norm polyphase component")
APS_LPF = _method("aps-lpf", True, "APS with the blur before it (low-pass filter, then adaptive polyphase sampling)")
