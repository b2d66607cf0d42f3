"""SGD and the paper's learning-rate schedules (steps of x0.1, or cosine), set per epoch.

The parameters of layers an anti-aliasing method inserted train as their paper says (their
parameter groups come from the method's registration, :mod:`antialiased.training.method_rules`:
e.g. LPS's scorer without weight decay); every other parameter as the paper's recipe.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from antialiased.training.method_rules import parameter_groups

__all__ = ["build_optimizer", "build_lr_scheduler", "LR_SCHEDULES", "lr_factor"]


def _step(epoch: int, *, lr_step: int, epochs: int) -> float:
    return 0.1 ** (epoch // lr_step)


def _cosine(epoch: int, *, lr_step: int, epochs: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


# schedule name -> multiplier of the initial lr for a 0-based epoch
LR_SCHEDULES: dict[str, Callable[..., float]] = {"step": _step, "cosine": _cosine}


def lr_factor(schedule: str, epoch: int, *, lr_step: int = 30, epochs: int = 90) -> float:
    """Multiplier of the initial learning rate in ``epoch`` (0-based).

    Example:
        >>> [lr_factor("step", e, lr_step=30) for e in (0, 29, 30, 60)]
        [1.0, 1.0, 0.1, 0.010000000000000002]
        >>> round(lr_factor("cosine", 45, epochs=90), 6)
        0.5
    """
    return LR_SCHEDULES[schedule](epoch, lr_step=lr_step, epochs=epochs)


def build_optimizer(model: nn.Module, *, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """SGD with momentum and weight decay, as in the paper; the methods' layers in their papers' groups.

    The first parameter group holds every parameter no method rule claims (one group for a model
    without learned anti-aliasing layers); each further group names its layer class and source.

    Example:
        >>> import torchvision
        >>> from antialiased.models.antialias import antialias
        >>> net = antialias(torchvision.models.resnet18(num_classes=2), method="lps")
        >>> opt = build_optimizer(net, lr=0.1, momentum=0.9, weight_decay=1e-4)
        >>> [(g["name"], g["weight_decay"], len(g["params"])) for g in opt.param_groups]  # 5 scorers x 4
        [('default', 0.0001, 74), ('LearnablePolyphaseSampling', 0.0, 20)]
    """
    groups = parameter_groups(model, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)


def build_lr_scheduler(optimizer: torch.optim.Optimizer, *, schedule: str, lr_step: int, epochs: int,
                       start_epoch: int = 0) -> LambdaLR:
    """A per-epoch scheduler whose shape comes from the flags and whose position can be resumed.

    The multipliers are closures, so a scheduler's ``state_dict`` records only where it is (the
    epoch and base learning rates); the schedule itself always follows the current flags.
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr schedule {schedule!r}; choose from {sorted(LR_SCHEDULES)}")
    if lr_step < 1:
        raise ValueError(f"--lr_step must be >= 1, got {lr_step}")
    fn = LR_SCHEDULES[schedule]

    def factor(epoch: int) -> float:
        return fn(epoch, lr_step=lr_step, epochs=epochs)

    last_epoch = -1
    if start_epoch > 0:  # --start-epoch without a checkpoint: begin part-way along the schedule
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        last_epoch = start_epoch - 1
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)
