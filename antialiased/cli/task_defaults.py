"""Flags whose default depends on the training task: the task's recipe fills what the command line left out.

``-b``, ``--lr``, ``-ep``, ``--crop-size`` and ``--lr-schedule`` default to the paper's values for
classification (256, 0.1, 90, 224, step) and to torchvision's segmentation reference for
segmentation (4, 0.02, 30, 480, poly): see :data:`antialiased.training.tasks.CLASSIFICATION_RECIPE`
and :data:`antialiased.training.segmentation.SEGMENTATION_RECIPE`. A flag's default is marked
(:func:`flag_default`: an ``int`` or ``float`` that knows it was not typed), so a value given on
the command line, even one equal to the default, is always kept.
"""
from __future__ import annotations

import argparse
import copy

from antialiased.errors import ConfigError
from antialiased.training.tasks import task_of

__all__ = ["flag_default", "is_flag_default", "with_task_defaults", "LR_SCHEDULE_CHOICES"]

LR_SCHEDULE_CHOICES = ("step", "cosine", "poly")


class _DefaultInt(int):
    """An ``int`` flag default (not typed on the command line)."""


class _DefaultFloat(float):
    """A ``float`` flag default (not typed on the command line)."""


def flag_default(value: int | float) -> int | float:
    """``value`` marked as a default: it works as the number, and :func:`is_flag_default` tells it apart.

    argparse keeps a non-string default as it is, so the mark survives parsing.

    Example:
        >>> d = flag_default(256)
        >>> d == 256, is_flag_default(d), is_flag_default(256)
        (True, True, False)
    """
    return _DefaultInt(value) if isinstance(value, int) else _DefaultFloat(value)


def is_flag_default(value: object) -> bool:
    """Whether ``value`` is a flag's default rather than a value given (None counts as not given)."""
    return value is None or isinstance(value, (_DefaultInt, _DefaultFloat))


def _schedule(args: argparse.Namespace, default: str) -> str:
    chosen = getattr(args, "lr_schedule", None)
    if getattr(args, "cos_lr", False):
        if chosen not in (None, "cosine"):
            raise ConfigError(f"--cos_lr and --lr-schedule {chosen} choose two schedules; pass one")
        return "cosine"
    return chosen or default


def with_task_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """A copy of ``args`` whose task-dependent flags left at their default hold the run's task's values.

    The task is ``--task``, else the model's (:func:`~antialiased.training.tasks.task_of`, which refuses a
    classifier with ``--task segmentation``).
    """
    task = task_of(args.arch, getattr(args, "task", None))
    recipe, out = task.recipe, copy.copy(args)
    for name in ("lr", "epochs", "batch_size", "crop_size"):
        if is_flag_default(getattr(args, name, None)):
            setattr(out, name, getattr(recipe, name))
    out.lr_schedule = _schedule(args, recipe.schedule)
    return out
