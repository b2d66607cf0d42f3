"""The run's learning-rate schedule: the paper's per-epoch ones (:mod:`antialiased.training.optim`) or the
polynomial decay of torchvision's segmentation reference, set after every optimizer step.

``poly``: ``lr = base_lr * (1 - step / total_steps) ** 0.9`` where ``step`` counts the optimizer
steps taken and ``total_steps`` is the epochs times the optimizer steps per epoch (batches per
epoch, or ``-mti``, divided by ``-ba``, rounded up). The scheduler is a ``LambdaLR`` whose position
is that step count, saved and restored with the checkpoint like the per-epoch ones (a mid-epoch
resume continues it exactly).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from antialiased.errors import ConfigError
from antialiased.training.config import OptimConfig
from antialiased.training.optim import build_lr_scheduler

__all__ = ["POLY_POWER", "StepwiseLR", "build_schedule", "poly_factor", "steps_per_epoch"]

POLY_POWER = 0.9  # torchvision's segmentation reference


def poly_factor(step: int, total: int, power: float = POLY_POWER) -> float:
    """The multiplier of the initial learning rate after ``step`` of ``total`` optimizer steps.

    Example:
        >>> poly_factor(0, 100), round(poly_factor(50, 100), 6), poly_factor(100, 100), poly_factor(120, 100)
        (1.0, 0.535887, 0.0, 0.0)
    """
    return (1.0 - min(step, total) / total) ** power


def steps_per_epoch(batches: int, max_iters: int | None, batch_accum: int) -> int:
    """Optimizer steps in one epoch of ``batches`` loader batches (``-mti`` caps them, ``-ba`` groups them).

    Example:
        >>> steps_per_epoch(10, None, 1), steps_per_epoch(10, 4, 1), steps_per_epoch(10, None, 3)
        (10, 4, 4)
    """
    batches = batches if max_iters is None else min(batches, max_iters)
    return math.ceil(batches / batch_accum)


class StepwiseLR(LambdaLR):
    """A ``LambdaLR`` whose position counts optimizer steps: it moves after each step the optimizer takes
    (an optimizer step hook), and the ``step()`` every schedule gets at the end of an epoch leaves it there.

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(net.parameters(), lr=1.0)
        >>> schedule = StepwiseLR(opt, lambda step: 1.0 / (step + 1))
        >>> for _ in range(3):
        ...     opt.step()
        >>> schedule.step()  # the epoch's end: nothing moves
        >>> schedule.last_epoch, opt.param_groups[0]["lr"]
        (3, 0.25)
    """

    _OWN = ("_hook", "_moving")  # attributes that are not the schedule's position: never saved

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Any, last_epoch: int = -1) -> None:
        self._moving = True  # the constructor's own first step sets the initial rate
        super().__init__(optimizer, factor, last_epoch=last_epoch)
        self._moving = False
        self._hook = optimizer.register_step_post_hook(self._after_optimizer_step)

    def _after_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._moving = True
        try:
            super().step()
        finally:
            self._moving = False

    def step(self, epoch: int | None = None) -> None:
        if self._moving:
            super().step(epoch)

    def state_dict(self) -> dict[str, Any]:
        return {key: value for key, value in super().state_dict().items() if key not in self._OWN}


def build_schedule(optimizer: torch.optim.Optimizer, optim: OptimConfig, batches_per_epoch: int) -> LambdaLR:
    """The schedule ``optim.schedule`` names: ``step``/``cosine`` per epoch, ``poly`` per optimizer step.

    ``batches_per_epoch``: this rank's loader batches in one epoch (for ``poly``'s total).
    """
    if optim.schedule != "poly":
        return build_lr_scheduler(optimizer, schedule=optim.schedule, lr_step=optim.lr_step, epochs=optim.epochs,
                                  start_epoch=optim.start_epoch)
    per_epoch = steps_per_epoch(batches_per_epoch, optim.max_train_iters, optim.batch_accum)
    if per_epoch < 1:
        raise ConfigError("the poly schedule needs at least one optimizer step per epoch (is the training set empty?)")
    total = per_epoch * optim.epochs
    last = -1
    if optim.start_epoch > 0:  # --start-epoch without a checkpoint: begin part-way along the schedule
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        last = optim.start_epoch * per_epoch - 1

    def factor(step: int) -> float:
        return poly_factor(step, total)

    return StepwiseLR(optimizer, factor, last_epoch=last)
