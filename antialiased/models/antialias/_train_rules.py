"""How a method's inserted layers train, as data: the optimizer settings and schedules of its paper.

A :class:`~._types.Method` lists these records in its ``training`` field; ``antialiased.training``
applies them to any model holding such layers (``training/method_rules.py``): every parameter
of a layer matching a :class:`ParamGroupRule` goes into a parameter group with the rule's
settings (e.g. no weight decay), and every :class:`BufferSchedule` sets its buffer at the start
of each epoch (e.g. LPS's Gumbel-softmax temperature). Rules match layers by class, so a model
built by hand with these layers trains the same way.

Example:
    >>> from torch import nn
    >>> rule = BufferSchedule(nn.Module, "tau", step_decay(0.5, every=2, floor=0.2), "example", "initial_tau")
    >>> [round(rule.value(epoch, 1.0), 3) for epoch in range(6)]
    [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    >>> rule.value(10, 1.0)  # never below the floor
    0.2
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from torch import nn

__all__ = ["ParamGroupRule", "BufferSchedule", "step_decay"]


@dataclass(frozen=True)
class ParamGroupRule:
    """Optimizer settings for the parameters of every layer of class ``layer`` (the paper's choice).

    Attributes:
        layer: the inserted layer's class (subclasses match too).
        settings: the parameter group's overrides, e.g. ``{"weight_decay": 0.0}`` (keys of
            ``torch.optim`` parameter groups; ``lr_scale`` multiplies the base learning rate).
        source: where the paper or its code says so (for the docs and the optimizer's record).
        prefix: only the parameters whose name inside the layer starts with it (``"scorer."``); "" all.
    """

    layer: type[nn.Module]
    settings: Mapping[str, Any]
    source: str
    prefix: str = ""


@dataclass(frozen=True)
class BufferSchedule:
    """A buffer of every layer of class ``layer`` set at the start of each epoch.

    Attributes:
        layer: the inserted layer's class.
        buffer: the buffer's name in the layer (a scalar tensor), e.g. ``"gumbel_tau"``.
        rule: ``(epoch, initial) -> value`` with the 0-based epoch and the layer's initial value.
        source: where the paper or its code says so.
        initial: the layer attribute holding the initial value (the schedule starts from it, so that
            the value depends on the epoch alone and a resumed run continues it).
    """

    layer: type[nn.Module]
    buffer: str
    rule: Callable[[int, float], float]
    source: str
    initial: str

    def value(self, epoch: int, initial: float) -> float:
        """The buffer's value in ``epoch`` (0-based)."""
        return float(self.rule(epoch, initial))


def step_decay(gamma: float, *, every: int, floor: float) -> Callable[[int, float], float]:
    """``max(floor, initial * gamma ** (epoch // every))``: a step decay per epoch with a lower limit."""

    def rule(epoch: int, initial: float) -> float:
        return max(floor, initial * gamma ** (epoch // every))

    rule.__doc__ = f"x{gamma} every {every} epochs, at least {floor}"
    return rule
