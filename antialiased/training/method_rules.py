"""The training rules of the anti-aliasing methods' layers: their parameter groups and per-epoch schedules.

Each method registers how its inserted layers train (``Method.training``: :class:`ParamGroupRule`
and :class:`BufferSchedule` records, from its paper or code; ``docs/methods.md`` lists them).
Training applies them to whatever model it trains, by layer class: :func:`parameter_groups` for
the optimizer (e.g. LPS's scorer without weight decay) and :func:`apply_epoch_schedules` at the
start of every epoch (e.g. LPS's Gumbel-softmax temperature, x0.85 every 10 epochs). A model
without such layers gets one parameter group, as before.

Example:
    >>> import torch, torchvision
    >>> from antialiased.models.antialias import antialias
    >>> net = antialias(torchvision.models.resnet18(num_classes=2), method="lps")
    >>> groups = parameter_groups(net, lr=0.1, weight_decay=1e-4)
    >>> [(g["name"], g["weight_decay"]) for g in groups]
    [('default', 0.0001), ('LearnablePolyphaseSampling', 0.0)]
    >>> changed = apply_epoch_schedules(net, 20)  # the authors' x0.85 every 10 epochs
    >>> round(float(net.relu[1].gumbel_tau), 4)
    0.7225
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from antialiased.models.antialias import METHODS
from antialiased.models.antialias._train_rules import BufferSchedule, ParamGroupRule

__all__ = ["training_rules", "parameter_groups", "apply_epoch_schedules"]


def training_rules() -> tuple[list[ParamGroupRule], list[BufferSchedule]]:
    """Every registered method's rules, each once (methods may share them, as lps and lps-lpf do)."""
    records = list({id(record): record for method in METHODS.values() for record in method.training}.values())
    return ([r for r in records if isinstance(r, ParamGroupRule)],
            [r for r in records if isinstance(r, BufferSchedule)])


def _matched(model: nn.Module, rules: list[ParamGroupRule]) -> dict[int, ParamGroupRule]:
    """Parameter id -> the first rule whose layer holds it (parameters of frozen layers are left out)."""
    found: dict[int, ParamGroupRule] = {}
    for module in model.modules():
        for rule in rules:
            if isinstance(module, rule.layer):
                for name, param in module.named_parameters():
                    if name.startswith(rule.prefix) and param.requires_grad:
                        found.setdefault(id(param), rule)
    return found


def parameter_groups(model: nn.Module, *, lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: ``default`` (every parameter no rule claims), then one per rule used.

    A rule's ``settings`` override the defaults (``lr_scale`` multiplies ``lr``); each group records
    its ``name`` (the layer class) and the rule's ``source``. Empty groups are left out.
    """
    rules = training_rules()[0]
    claimed = _matched(model, rules)
    default = [p for p in model.parameters() if id(p) not in claimed]
    groups = [{"params": default, "lr": lr, "weight_decay": weight_decay, "name": "default"}] if default else []
    for rule in rules:
        params = [p for p in model.parameters() if claimed.get(id(p)) is rule]
        if not params:
            continue
        settings = dict(rule.settings)
        scale = settings.pop("lr_scale", 1.0)
        groups.append({"params": params, "lr": lr * scale, "weight_decay": weight_decay, **settings,
                       "name": rule.layer.__name__, "source": rule.source})
    return groups


@torch.no_grad()
def apply_epoch_schedules(model: nn.Module, epoch: int) -> list[str]:
    """Set every scheduled buffer for ``epoch`` (0-based); returns ``'<path>.<buffer>=<value>'`` per change.

    Values come from the epoch alone (and the layer's initial value), so a resumed run continues
    the schedule where it was.
    """
    changed = []
    schedules = training_rules()[1]
    for path, module in model.named_modules():
        for schedule in schedules:
            if not isinstance(module, schedule.layer):
                continue
            buffer = getattr(module, schedule.buffer)
            value = schedule.value(epoch, float(getattr(module, schedule.initial)))
            if float(buffer) != value:
                buffer.fill_(value)
                changed.append(f"{path}.{schedule.buffer}={value:g}")
    return changed
