"""The tasks evaluation knows, registered once each, and how a run's task is decided.

A task (:class:`~antialiased.evaluation.task.Task`) is one adapter: its targets, output
normalization, "the same prediction", its data and its table columns. A run's task is ``--task``
when given, else the model's: ``model_spec.task`` of a model by name (classification for names that
do not say), or, for a model object without a spec, the form of its output on a probe image.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from antialiased.errors import ModelError
from antialiased.evaluation.classification import ClassificationTask
from antialiased.evaluation.probe import probe_output
from antialiased.evaluation.segmentation import PROBE_SIZE, SegmentationTask
from antialiased.evaluation.task import Task
from antialiased.support.registry import Registry

__all__ = ["TASKS", "register_task", "get_task", "declared_task", "infer_task"]

TASKS: Registry[Task] = Registry("task")


def register_task(task: Task) -> Task:
    """Add a task to :data:`TASKS` (each name once)."""
    return TASKS.add(task.name, task)


register_task(ClassificationTask())
register_task(SegmentationTask())


def get_task(name: str) -> Task:
    """The task called ``name``; ConfigError naming the known ones otherwise."""
    return TASKS.known(name)


def declared_task(spec: Any) -> str | None:
    """The task a model spec declares (``spec.task``), None when it does not say."""
    task = getattr(spec, "task", None)
    return None if task is None else str(task)


def _probed_task(model: nn.Module, device: torch.device | str) -> str:
    output = probe_output(model, PROBE_SIZE, device, fix="it was probed to show its task: give the task (--task)")
    scores = TASKS["segmentation"].outputs(output) if isinstance(output, dict) else (
        output[0] if isinstance(output, (tuple, list)) and output else output)
    return "segmentation" if torch.is_tensor(scores) and scores.dim() == 4 else "classification"


def infer_task(requested: str | None, spec: Any = None, model: nn.Module | None = None,
               device: torch.device | str = "cpu") -> Task:
    """The task of a run: ``requested`` (``--task``) when given, else the spec's, else (a model object without
    a spec) the form of its output, else classification.

    Raises:
        ConfigError: an unknown task.
        ModelError: ``requested`` differs from the task the model's spec declares (a classifier given
            ``--task segmentation``), checked before anything is loaded or read.
    """
    declared = declared_task(spec)
    if requested is not None:
        task = get_task(requested)
        if declared is not None and declared != task.name:
            name = getattr(spec, "name", "the model")
            raise ModelError(f"{name} is a {declared} model but --task {task.name} was given: drop --task (the "
                             f"model's task is used), or give a {task.name} model")
        return task
    if declared is not None:
        return get_task(declared)
    if model is not None and getattr(model, "model_spec", None) is None:
        return get_task(_probed_task(model, device))
    return TASKS["classification"]
