"""The published layout: where the paper's models (antialiased-cnns) keep their blur layers.

``antialias(model, layout="published")`` places the same layers as the default layout but the way
the published models do, so that their checkpoints (which save each blur's ``filt``) load:

- a new layer in a plain ``Sequential`` becomes a sibling (indices renumbered: AlexNet's and
  VGG's ``features``); one at the end of a ``Sequential`` nested in another goes to the outer one
  (MobileNet-v2's blur after the depthwise conv-BN-ReLU6 block, before the projection);
- a pool becomes its pieces in place (``[MaxPool(k, 1), BlurPool]``, named as the paper's choice
  says: DenseNet's ``max0``, ``pool0``), or a ``Sequential`` of them outside a ``Sequential``
  (ResNet's ``maxpool``);
- elsewhere a blur after a layer wraps the layer that consumes it (ResNet's
  ``conv2 = Sequential(BlurPool, conv)``), and a blur before a layer wraps that layer;
- blur filters are saved (``persistent=True``).

Example:
    >>> import torchvision, antialiased
    >>> from antialiased.models.antialias import antialias
    >>> ours = antialias(torchvision.models.resnet18(), filter_size=3, layout="published")
    >>> list(ours.state_dict()) == list(antialiased.create_model("resnet18_lpf3").state_dict())
    True
"""
from __future__ import annotations

from collections import OrderedDict

import torch.fx as fx
from torch import nn

from antialiased.models.antialias._apply import Applier, _join
from antialiased.models.antialias._graphs import is_plain_sequential, modules_called
from antialiased.models.antialias._sites import describe
from antialiased.models.antialias._types import Rewrite, Site

__all__ = ["PublishedApplier"]

Named = list[tuple[str | None, nn.Module]]


class PublishedApplier(Applier):
    """An :class:`~._apply.Applier` that places new layers as the published models do (module doc)."""

    def __init__(self, index) -> None:
        super().__init__(index)
        # Sequential path -> child name -> (layers before it, its replacement or None, layers after it)
        self.sequentials: dict[str, dict[str, tuple[Named, Named | None, Named]]] = {}

    def _slot(self, path: str, child: str) -> tuple[Named, Named | None, Named]:
        return self.sequentials.setdefault(path, {}).setdefault(child, ([], None, []))

    def _replace_pool(self, site: Site, rewrite: Rewrite) -> str:
        parent_path, _, name = site.path.rpartition(".")
        if not is_plain_sequential(self.index.module(parent_path)):
            return super()._replace_pool(site, rewrite)
        op = rewrite.replace if rewrite.replace is not None else site.module
        parts = [*rewrite.before, op, *rewrite.after]
        names = site.choice.published_names if site.choice is not None else None
        named = list(zip(names, parts)) if names and len(names) == len(parts) else [(None, m) for m in parts]
        if len(parts) == 1:
            named = [(name, parts[0])]
        before, _, after = self._slot(parent_path, name)
        self.sequentials[parent_path][name] = (before, named, after)
        return rewrite.description or " -> ".join(describe(m) for m in parts)

    def _hoist(self, owner: str, target: str) -> tuple[str, str]:
        """Out of a Sequential's end into the Sequential around it, as far as that goes."""
        while owner and "." not in target:
            module = self.index.module(owner)
            parent_path, _, leaf = owner.rpartition(".")
            if list(module._modules)[-1] != target or not is_plain_sequential(self.index.module(parent_path)):
                break
            owner, target = parent_path, leaf
        return owner, target

    def _after_step(self, owner: str, node: fx.Node, modules: tuple[nn.Module, ...], name: str):
        module = self.index.module(owner)
        if node.op == "call_module" and is_plain_sequential(module) and "." not in node.target:
            path, child = self._hoist(owner, node.target)
            return lambda: self._slot(path, child)[2].extend((None, m) for m in modules)
        users = list(node.users)
        if len(users) == 1 and users[0].op == "call_module" and users[0].args[:1] == (node,):
            consumer = _join(owner, users[0].target)
            if modules_called(self.index.graph(owner)).get(users[0].target) == 1:
                return lambda: self.index.replace(consumer, nn.Sequential(*modules, self.index.module(consumer)))
        return super()._after_step(owner, node, modules, name)

    def _before_step(self, site: Site, modules: tuple[nn.Module, ...]):
        parent_path, _, leaf = site.path.rpartition(".")
        if is_plain_sequential(self.index.module(parent_path)):
            return lambda: self._slot(parent_path, leaf)[0].extend((None, m) for m in modules)
        return lambda: self.index.replace(site.path, nn.Sequential(*modules, site.module))

    def finish(self) -> nn.Module:
        for path in sorted(self.sequentials, key=lambda p: -(p.count(".") + 1 if p else 0)):
            _rebuild(self.index.module(path), self.sequentials[path])
            self.index.replace(path, self.index.module(path))  # same object: forget its cached graphs
        return super().finish()


def _rebuild(sequential: nn.Module, edits: dict[str, tuple[Named, Named | None, Named]]) -> None:
    """Insert and replace children of ``sequential`` in place (renumbered if its names are indices)."""
    items: Named = []
    for name, child in sequential._modules.items():
        before, replacement, after = edits.get(name, ([], None, []))
        items += before + (replacement if replacement is not None else [(name, child)]) + after
    numbered = all(name.isdigit() for name in sequential._modules)
    new: OrderedDict[str, nn.Module] = OrderedDict()
    for i, (name, child) in enumerate(items):
        key = str(i) if numbered else name or f"blur{i}"
        new[key] = child
    sequential._modules.clear()
    sequential._modules.update(new)
