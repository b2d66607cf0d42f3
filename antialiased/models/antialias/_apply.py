"""Realizing a :class:`~._types.Rewrite` without changing the model's state-dict keys.

New layers may hold parameters and buffers (the learned methods: LPS, adaptive, TIPS); they go
by the same rules, and their state-dict keys live under the name of the place they get, so they
are deterministic and every other key stays the baseline's. In order of preference (the first
that applies; the keys of an inserted layer's ``scorer.conv1.weight`` in brackets):

1. a pool (no state) is replaced by ``Sequential(before..., pool', after...)``
   [``maxpool.1.scorer.conv1.weight``];
2. after the last child of a plain ``Sequential``: appended to it [``features.7.scorer...``];
3. next to a stateless layer called once (a ReLU, an empty ``Identity`` slot): that layer is
   replaced by ``Sequential(layer, new)`` [``relu.1.scorer...``] (or by ``new`` for the
   ``Identity``: timm's ``aa`` slots, [``layer2.0.aa.scorer...``]);
4. otherwise the module whose forward makes the call (the *owner*) runs its graph with the new
   call inserted as its forward: the same object, its class kept as the base of
   ``Antialiased<Class>``, its children, parameters and buffers untouched
   (``_graphs.keyed_graph_module``); the new layer is its child ``blur_<site>``
   [``layer2.0.blur_conv1.scorer...``]. Graph edits are collected and done at the end, innermost
   owners first.

Where the owner cannot be traced, a module rule applies (``aa`` slots, as timm's blocks have);
failing that, the site is left alone with the reason. Everything is checked before anything is
changed, so a refused site leaves the model as it was.

Example:
    >>> from torch import nn
    >>> from antialiased.models.antialias import antialias
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
    >>> net = antialias(net, include_stem=True)
    >>> [type(m).__name__ for m in net]  # the conv's blur is ReLU's neighbour (3); the pool a Sequential (1)
    ['Conv2d', 'BatchNorm2d', 'Sequential', 'Sequential']
    >>> [type(m).__name__ for m in net[2]], [type(m).__name__ for m in net[3]]
    (['ReLU', 'BlurPool'], ['MaxPool2d', 'BlurPool'])
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.fx as fx
from torch import nn

from antialiased.models.antialias._follow import _chain, follow, reaches_output
from antialiased.models.antialias._graphs import GraphIndex, is_plain_sequential, keyed_graph_module, modules_called
from antialiased.models.antialias._sites import describe
from antialiased.models.antialias._types import Rewrite, Site

__all__ = ["CannotApply", "Applier"]


class CannotApply(Exception):
    """The rewrite has no place in this model; the message is the summary's reason."""


@dataclass
class _Edit:
    owner: str
    node: str
    where: str  # "before" or "after"
    modules: tuple[nn.Module, ...]
    name: str


def _stateless(module: nn.Module) -> bool:
    return not any(True for _ in module.parameters()) and not any(True for _ in module.buffers())


def _same_state(old: nn.Module, new: nn.Module) -> bool:
    """``new`` holds ``old``'s very parameters and buffers, under the same keys."""
    a, b = old.state_dict(keep_vars=True), new.state_dict(keep_vars=True)
    return list(a) == list(b) and all(a[k] is b[k] for k in a)


def _group(modules: tuple[nn.Module, ...]) -> nn.Module:
    return modules[0] if len(modules) == 1 else nn.Sequential(*modules)


class Applier:
    """Applies rewrites to the model behind ``index``; call :meth:`finish` once at the end."""

    def __init__(self, index: GraphIndex) -> None:
        self.index = index
        self.edits: list[_Edit] = []
        self.graph_modules: list[str] = []
        self._uses = self._count_registrations()

    def _count_registrations(self) -> dict[int, int]:
        uses: dict[int, int] = {}
        for _, module in self.index.model.named_modules(remove_duplicate=False):
            uses[id(module)] = uses.get(id(module), 0) + 1
        return uses

    def apply(self, site: Site, rewrite: Rewrite) -> str:
        """Apply ``rewrite`` to ``site``; returns the summary's "after" text or raises CannotApply."""
        if _stateless(site.module):
            return self._replace_pool(site, rewrite)
        if rewrite.replace is not None and not (_same_state(site.module, rewrite.replace)
                                                and self._uses.get(id(site.module)) == 1):
            raise CannotApply(f"a rewrite cannot replace {type(site.module).__name__}, which holds parameters, "
                              f"except by a layer holding the same ones (same keys) where it is used once")
        steps, names = [], []
        if rewrite.replace is not None:  # a twin holding the same parameters (a polyphase transposed conv)
            steps.append(lambda: self.index.replace(site.path, rewrite.replace))
        if rewrite.before:
            steps.append(self._before_step(site, rewrite.before))
        if rewrite.after:
            point = self._after_point(site, rewrite.after_followers)
            if point is None:
                steps.append(self._module_rule_after(site, rewrite.after))
                names = ["(its block's 'aa' slot)"]
            else:
                owner, node, names = point
                steps.append(self._after_step(owner, node, rewrite.after, _blur_name(site)))
        for step in steps:  # everything was checked: now change the model
            step()
        if rewrite.stride is not None:
            site.module.stride = tuple(rewrite.stride)
        if rewrite.description:
            return rewrite.description
        op = rewrite.replace if rewrite.replace is not None else site.module
        parts = [*map(describe, rewrite.before), describe(op), *names, *map(describe, rewrite.after)]
        return " -> ".join(parts)

    def finish(self) -> nn.Module:
        """Do the collected graph edits, innermost owners first; returns the model (the same object)."""
        owners = sorted({e.owner for e in self.edits}, key=lambda p: (-(p.count(".") + 1 if p else 0), p))
        for owner in owners:
            module, graph = self.index.module(owner), self.index.graph(owner)
            for edit in (e for e in self.edits if e.owner == owner):
                _insert(module, graph, edit)
            graph.lint()
            self.index.replace(owner, keyed_graph_module(module, graph), graph)
            self.graph_modules.append(owner)
        self.edits.clear()
        return self.index.model

    def _replace_pool(self, site: Site, rewrite: Rewrite) -> str:
        op = rewrite.replace if rewrite.replace is not None else site.module
        if rewrite.stride is not None and rewrite.replace is None:
            op.stride = rewrite.stride
        parts = (*rewrite.before, op, *rewrite.after)
        self.index.replace(site.path, _group(parts))
        return rewrite.description or " -> ".join(describe(m) for m in parts)

    # -- where the new layers go -------------------------------------------------------------

    def _after_point(self, site: Site, with_followers: bool) -> tuple[str, fx.Node, list[str]] | None:
        """(owner, node to insert after, names of the followers passed) or None without a graph."""
        located = self.index.owner(site.path)
        if located is None:
            return None
        owner, node = located
        if not with_followers:
            return owner, node, []
        names: list[str] = []
        while True:
            module = self.index.module(owner)
            last = follow(node, module)
            passed = _chain(node, module)[: _position(node, last, module)]
            names += [_node_text(n, module) for n, kind in passed if kind != "pass"]
            up = self.index.owner(owner) if owner and reaches_output(last) else None
            if up is None or follow(up[1], self.index.module(up[0])) is up[1]:
                return owner, last, names
            owner, node = up

    def _check_graph_edit(self, owner: str) -> None:
        if self.index.depends_on_training(owner):
            raise CannotApply(
                f"the forward of {owner or 'the model'} ({type(self.index.module(owner)).__name__}) takes other "
                f"paths in training than in eval mode; rewriting its graph would freeze one of them"
            )

    def _after_step(self, owner: str, node: fx.Node, modules: tuple[nn.Module, ...], name: str):
        module, graph = self.index.module(owner), self.index.graph(owner)
        if is_plain_sequential(module) and reaches_output(node) and node.op == "call_module":
            return lambda: [module.append(m) for m in modules]
        if node.op == "call_module":
            target = self.index.module(_join(owner, node.target))
            single = modules_called(graph).get(node.target) == 1 and self._uses.get(id(target)) == 1
            if single and _stateless(target):
                new = _group(modules) if type(target) is nn.Identity else nn.Sequential(target, *modules)
                return lambda: self.index.replace(_join(owner, node.target), new)
        self._check_graph_edit(owner)
        return lambda: self.edits.append(_Edit(owner, node.name, "after", modules, name))

    def _before_step(self, site: Site, modules: tuple[nn.Module, ...]):
        located = self.index.owner(site.path)
        if located is None:
            raise CannotApply(self._untraceable(site))
        owner, node = located
        source = node.args[0] if node.args else None
        if isinstance(source, fx.Node) and source.op == "call_module" and len(source.users) == 1:
            try:  # "before this call" is "after the layer feeding it", if that one can take it
                return self._after_step(owner, source, modules, _blur_name(site))
            except CannotApply:
                pass
        self._check_graph_edit(owner)
        return lambda: self.edits.append(_Edit(owner, node.name, "before", modules, _blur_name(site)))

    def _module_rule_after(self, site: Site, modules: tuple[nn.Module, ...]):
        parent_path, _, leaf = site.path.rpartition(".")
        parent = self.index.module(parent_path)
        slot = getattr(parent, "aa", None)
        if type(slot) is nn.Identity and leaf in parent._modules and self._uses.get(id(slot)) == 1:
            return lambda: self.index.replace(_join(parent_path, "aa"), _group(modules))
        raise CannotApply(self._untraceable(site))

    def _untraceable(self, site: Site) -> str:
        parent_path = site.path.rpartition(".")[0]
        parent = self.index.module(parent_path)
        why = self.index.errors.get(parent_path, "it does not call this layer as a module exactly once")
        return (
            f"no place for the new layer: the forward of {type(parent).__name__} ({parent_path or 'the model'}) "
            f"could not be followed ({why}) and no module rule fits (a Sequential, an empty 'aa' slot); "
            f"fix: make that forward traceable by torch.fx"
        )


def _join(owner: str, target: str) -> str:
    return f"{owner}.{target}" if owner else target


def _blur_name(site: Site) -> str:
    return "blur_" + site.path.rpartition(".")[2].replace(".", "_")


def _node_text(node: fx.Node, owner: nn.Module) -> str:
    """A follower's name in the summary: its attribute name, or its class inside a Sequential."""
    if node.op == "call_module":
        return node.target if not node.target.rpartition(".")[2].isdigit() else \
            type(owner.get_submodule(node.target)).__name__
    return node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))


def _position(node: fx.Node, last: fx.Node, module: nn.Module) -> int:
    chain = [n for n, _ in _chain(node, module)]
    return chain.index(last) + 1 if last in chain else 0


def _free_name(module: nn.Module, base: str) -> str:
    name, i = base, 1
    while hasattr(module, name):
        name, i = f"{base}_{i}", i + 1
    return name


def _insert(module: nn.Module, graph: fx.Graph, edit: _Edit) -> None:
    """Register ``edit``'s layers on ``module`` and call them at the edit's place in ``graph``."""
    name = _free_name(module, edit.name)
    module.add_module(name, _group(edit.modules))
    node = next(n for n in graph.nodes if n.name == edit.node)
    if edit.where == "after":
        with graph.inserting_after(node):
            new = graph.call_module(name, (node,))
        node.replace_all_uses_with(new, delete_user_cb=lambda user: user is not new)
    else:
        source = node.args[0]
        with graph.inserting_before(node):
            new = graph.call_module(name, (source,))
        node.replace_input_with(source, new)
